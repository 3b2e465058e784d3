"""Nothing lost, nothing sent twice, every report applied, credits exact: under chaos.

Real processes on one PostgreSQL database: two API processes (``serve --no-worker``)
and three dispatchers (``worker``) send through the fake OVHcloud API, which answers
20% of its calls (sends and look-ups alike) with a fault of every kind: latency,
timeouts, dropped connections, 429 with ``Retry-After``, 500, and answers lost after
the SMS was taken. Its delivery reports come to both API processes, some twice, some
followed by a stale "pending" one, some before the send's answer, some late.

Meanwhile ``SMSGW_CHAOS_EVENTS`` (5,000) booking events are posted, a tenth of them
twice (some at the same moment to both API processes, some later), and workers are
killed with SIGKILL and started again. One worker runs with its clock 90 s ahead
(``faketime``). OVHcloud keeps each job pending 0.3 s and lists it 0.5 s after that,
answers every batch's ids in reverse order of its receivers (its reports put them
right) and leaves one receiver in fifty out of its answers; the call budget is on.
Some messages are cancelled right after they are accepted, some numbers send STOP
during the run, two campaigns run meanwhile (one cancelled a second after it starts),
a tenth of the events come from a second client whose webhook receiver refuses a
fifth of the deliveries, and the messages table is locked (``ACCESS EXCLUSIVE``) for
``SMSGW_CHAOS_LOCK_SECONDS`` (40) in the middle of it.
When every message has reached a final state, the test checks what a marketplace
and its accountant would:

- every acknowledged message exists, once, and is final (lost: 0);
- OVHcloud took each SMS exactly once (duplicates: 0), and every SMS it took is
  known to the gateway by its id;
- every delivery report it sent is applied: each SMS's final state is the message's;
- the client's credits are its quota minus what the billed messages cost, and equal
  the sum of its ledger;
- nothing was sent after a cancel answered 200 (or 202 and ended cancelled), no
  message that ended cancelled (a cancel, a campaign's cancel, a booking's) reached
  OVHcloud, and nothing reached OVHcloud for a number later than a send in flight at
  its STOP could;
- the campaign that ran its course has a message for every recipient it announced;
- each message's webhooks, sorted by ``sequence``, follow the lifecycle: 1, 2… with no
  gap, each status once, a final status last and equal to the message's;
- after the lock, ``/readyz`` answers 200 again and sending resumes.

PostgreSQL only: SQLite serves a single process.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import secrets
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from tests.chaos.receiver import FlakyReceiver
from tests.chaos.summary import record_summary
from tests.databases import own_postgres_database, postgres_server_url
from tests.processes import (
    Process,
    create_client,
    fake_ovh_endpoint,
    free_port,
    gateway_env,
    ovh_settings,
    process_group,
    run_command,
    start_fake_ovh,
    wait_until_ok,
)

pytestmark = [
    pytest.mark.chaos,
    pytest.mark.skipif(
        postgres_server_url() is None,
        reason="the chaos test runs several processes on one database: PostgreSQL only "
        "(set SMSGW_TEST_DATABASE_URL=postgresql+asyncpg://…)",
    ),
]

EVENTS = int(os.environ.get("SMSGW_CHAOS_EVENTS", "5000"))
DRAIN_DEADLINE_S = float(os.environ.get("SMSGW_CHAOS_DRAIN_SECONDS", "180"))
SEED = int(os.environ.get("SMSGW_CHAOS_SEED", "20261201"))
# Settings to try other numbers with, as JSON: {"lease_seconds": "30"}.
EXTRA_SETTINGS: dict[str, str] = json.loads(os.environ.get("SMSGW_CHAOS_SETTINGS", "{}"))
POST_CONCURRENCY = 24
DUPLICATE_SHARE = 0.10
WORKERS = 3
KILLS = 4  # spread over the posting
CANCEL_SHARE = 0.03  # accepted messages cancelled at once
STOPS = 20  # numbers that send STOP during the posting
HOOKED_SHARE = 0.10  # events posted by the client with a webhook receiver
RECEIVER_FAILURES = 0.2
CAMPAIGN_ROWS = 200
LOCK_S = float(os.environ.get("SMSGW_CHAOS_LOCK_SECONDS", "40"))
AHEAD = "+90s"  # one worker's clock
FINAL = {"delivered", "failed", "expired", "cancelled", "blocked", "rejected"}

FAULTS: dict[str, Any] = {
    "rate": 0.2,
    "kinds": ["latency", "timeout", "reset", "429", "500", "lost_response"],
    "seed": SEED,
    "scope": "all",  # look-ups fail too, not only sends
    "retry_after": 1,
    "spike_ms": 300,
    "timeout_sleep_s": 2.0,  # longer than the gateway's OVH timeout below
    "pending_s": 0.3,  # a job stays in GET /jobs this long
    "outgoing_lag_s": 0.5,  # then shows in GET /outgoing only this late
    "id_order": "reversed",  # a batch's ids answered in reverse order of its receivers
    "omit_receiver": 0.02,  # receivers left out of the answer, though sent
    "dlr": {
        "duplicate": True,
        "out_of_order": True,
        "before_answer": True,
        "late_s": 3.0,
        "rate": 0.2,
    },
}

# Small numbers so that retries, lease take-overs and look-ups happen within the run.
GATEWAY_SETTINGS = {
    "require_verified_phone": "false",
    "ovh_timeout_seconds": "1.0",
    "retry_base_seconds": "0.3",
    "retry_max_seconds": "3",
    "max_attempts": "40",
    "lease_seconds": "10",
    "uncertain_settle_seconds": "4",
    "provider_listing_lag_seconds": "1.5",
    "marketing_hours_enabled": "false",  # campaigns go whatever the hour of the run
    "campaign_rate_per_second": "100",
    "worker_poll_seconds": "0.5",
    "worker_batch_size": "20",
    "incoming_poll_seconds": "0",
    "blacklist_sync_seconds": "0",
    "provider_calls_per_minute": "3000",
    "circuit_cooldown_seconds": "1",
    "dlr_check_after_seconds": "15",
    "dlr_check_interval_seconds": "3",
    "database_pool_size": "4",
    "webhook_allow_private_networks": "true",  # the receiver is on loopback
    "webhook_retry_base_seconds": "1",
    "webhook_retry_max_seconds": "5",
    "log_level": "INFO",
    "access_log": "false",
}

TYPES = [
    ("booking.requested", 30),
    ("booking.accepted", 15),
    ("booking.refused", 10),
    ("booking.expired", 10),
    ("booking.starting_soon", 15),
    ("booking.expiring_soon", 10),
    ("booking.cancelled", 10),
]
TITLES = ["Kayak for two", "Sunset sail", "Bike tour", "Cooking class", "Wine tasting"]
NAMES = ["Anna", "Marc", "Zoé", "Jürgen", "Li", "Ola"]


@dataclass
class Tally:
    posted: int = 0
    accepted: int = 0  # 202
    replayed: int = 0  # 200
    retried: int = 0  # 503 / 429 / transport error, posted again
    answered_503: int = 0  # nothing stored, retry: the database or a conflict
    server_errors: list[str] = field(default_factory=list)  # a 500: a bug
    answers: dict[str, list[str]] = field(default_factory=dict)  # event_id -> message ids
    mismatched: list[str] = field(default_factory=list)  # a replay answered other ids
    kills: int = 0
    posting_s: float = 0.0
    settling_s: float = 0.0
    cancels: dict[str, int] = field(default_factory=dict)  # message id -> DELETE status
    stops: dict[str, float] = field(default_factory=dict)  # number -> when STOP was stored
    locked_s: float = 0.0
    ready_again_s: float | None = None  # after the lock, until both /readyz said 200
    lock_released_at: float = 0.0  # time.time()
    campaigns: dict[str, int] = field(default_factory=dict)  # id -> recipients announced
    campaign_cancel: int | None = None  # the cancel's HTTP status


def make_events(count: int, rng: random.Random) -> list[dict[str, Any]]:
    """Booking events of every type; texts repeat often enough to be batched.

    Bookings start in ten days, so the reminders the gateway schedules from them
    stay queued for later and are not part of this run's sending.
    """
    now = datetime.now(UTC).replace(microsecond=0)
    starts_at = (now + timedelta(days=10)).isoformat()
    expires_at = (now + timedelta(days=5)).isoformat()
    phones = [f"+336{rng.randrange(10**8):08d}" for _ in range(max(50, count // 3))]
    types = [t for t, _ in TYPES]
    weights = [w for _, w in TYPES]
    events = []
    for n in range(count):
        kind = rng.choices(types, weights)[0]
        booking = {
            "id": f"b-{n // 3}",
            "title": rng.choice(TITLES),
            "starts_at": starts_at,
            "expires_at": expires_at,
        }
        asker = {
            "user_ref": f"u-a{n}",
            "name": rng.choice(NAMES),
            "phone": rng.choice(phones),
            "language": rng.choice(["en", "fr", "de"]),
        }
        offeror = {
            "user_ref": f"u-o{n}",
            "name": rng.choice(NAMES),
            "phone": rng.choice(phones),
            "language": rng.choice(["en", "fr", "de"]),
        }
        events.append(
            {
                "event_id": f"evt-chaos-{n}",
                "type": kind,
                "booking": booking,
                "asker": asker,
                "offeror": offeror,
            }
        )
    return events


class Chaos:
    def __init__(self, logs: Path, database_url: str, processes: list[Process]) -> None:
        self.logs = logs
        self.database_url = database_url
        self.rng = random.Random(SEED)  # reproducible chaos
        self.token = f"cb-{secrets.token_hex(16)}"
        self.ports = [free_port(), free_port()]
        self.apis = [f"http://127.0.0.1:{port}" for port in self.ports]
        self.processes = processes  # stopped by the caller's process_group
        self.workers: list[Process] = []
        self.tally = Tally()
        self.quota = EVENTS * 4
        self.started = time.monotonic()
        self.receiver = FlakyReceiver(RECEIVER_FAILURES, SEED, free_port())
        self.clock_ahead = shutil.which("faketime") is not None

    # -- set-up ----------------------------------------------------------------

    def start(self) -> None:
        callbacks = [f"{api}/v1/providers/ovh/{self.token}/dlr" for api in self.apis]
        self.fake = start_fake_ovh(
            self.logs,
            callback_urls=callbacks,
            dlr_delay=0.3,
            log_level=os.environ.get("SMSGW_CHAOS_FAKE_LOG_LEVEL", "warning"),
        )
        self.processes.append(self.fake)
        endpoint = fake_ovh_endpoint(self.fake)
        self.fake_url = endpoint.removesuffix("/1.0")
        env = gateway_env(
            self.database_url,
            **ovh_settings(endpoint, self.token),
            **{**GATEWAY_SETTINGS, **EXTRA_SETTINGS},
        )
        run_command(["-m", "smsgateway", "migrate"], env, self.logs)
        self.api_key = create_client(env, self.logs, "chaos", "--quota", str(self.quota))
        self.hooked_key = create_client(
            env, self.logs, "hooked", "--quota", str(self.quota), "--webhook-url", self.receiver.url
        )
        httpx.post(f"{self.fake_url}/_control/faults", json=FAULTS, timeout=5).raise_for_status()
        for n, port in enumerate(self.ports):
            args = ["-m", "smsgateway", "serve", "--no-worker", "--port", str(port)]
            self.processes.append(Process(f"api{n + 1}", args, env, self.logs))
        for n in range(WORKERS):
            # The last worker's clock runs ahead: it must behave like the others.
            ahead = ["faketime", "-f", AHEAD] if self.clock_ahead and n == WORKERS - 1 else None
            args = ["-m", "smsgateway", "worker"]
            worker = Process(f"worker{n + 1}", args, env, self.logs, prefix=ahead)
            self.processes.append(worker)
            self.workers.append(worker)
        for api, process in zip(self.apis, self.processes[1:3], strict=True):
            wait_until_ok(f"{api}/readyz", process)

    # -- the run ---------------------------------------------------------------

    async def post_all(self, events: list[dict[str, Any]]) -> None:
        limits = httpx.Limits(max_connections=POST_CONCURRENCY * 2)
        async with httpx.AsyncClient(timeout=30, limits=limits) as http:
            gate = asyncio.Semaphore(POST_CONCURRENCY)
            later: list[dict[str, Any]] = []

            async def one(n: int, event: dict[str, Any]) -> None:
                async with gate:
                    twice = self.rng.random() < DUPLICATE_SHARE
                    if twice and self.rng.random() < 0.5:
                        # The same event to both API processes at the same moment.
                        await asyncio.gather(
                            self.post(http, self.apis[0], event),
                            self.post(http, self.apis[1], event),
                        )
                        return
                    await self.post(http, self.apis[n % 2], event)
                    if twice:
                        later.append(event)

            await asyncio.gather(*(one(n, event) for n, event in enumerate(events)))
            # Replays of events answered a while ago.
            await asyncio.gather(
                *(self.post(http, self.apis[n % 2], event) for n, event in enumerate(later))
            )

    def auth_for(self, event: dict[str, Any]) -> dict[str, str]:
        """The client that posts this event: a tenth of them, the one with webhooks."""
        hooked = int(event["event_id"].rsplit("-", 1)[1]) % round(1 / HOOKED_SHARE) == 0
        return {"Authorization": f"Bearer {self.hooked_key if hooked else self.api_key}"}

    async def post(self, http: httpx.AsyncClient, api: str, event: dict[str, Any]) -> None:
        """Post until answered 200/202, as a client with an idempotency key would."""
        self.tally.posted += 1
        auth = self.auth_for(event)
        for _ in range(40):
            try:
                response = await http.post(f"{api}/v1/booking-events", json=event, headers=auth)
            except httpx.TransportError:
                self.tally.retried += 1
                await asyncio.sleep(0.2)
                continue
            if response.status_code in (202, 200):
                self.answered(event["event_id"], response)
                if response.status_code == 202 and self.rng.random() < CANCEL_SHARE:
                    await self.cancel(http, api, auth, response.json()["messages"])
                return
            if response.status_code == 503:
                self.tally.answered_503 += 1
            elif response.status_code >= 500:
                self.tally.server_errors.append(f"{response.status_code} {response.text[:200]}")
            assert response.status_code in (429, 500, 502, 503, 504), response.text
            self.tally.retried += 1
            await asyncio.sleep(0.2)
        raise AssertionError(f"event {event['event_id']} never acknowledged")

    def answered(self, event_id: str, response: httpx.Response) -> None:
        ids = [m["id"] for m in response.json()["messages"]]
        if response.status_code == 202:
            self.tally.accepted += 1
        else:
            self.tally.replayed += 1
        first = self.tally.answers.setdefault(event_id, ids)
        if first != ids:
            self.tally.mismatched.append(event_id)

    async def cancel(
        self, http: httpx.AsyncClient, api: str, auth: dict[str, str], messages: list[Any]
    ) -> None:
        """Cancel a message just accepted; a worker may be sending it already."""
        if not messages:
            return
        message_id = messages[0]["id"]
        for _ in range(10):
            try:
                response = await http.delete(f"{api}/v1/messages/{message_id}", headers=auth)
            except httpx.TransportError:
                await asyncio.sleep(0.2)
                continue
            if response.status_code in (200, 202, 409):
                self.tally.cancels[message_id] = response.status_code
                return
            assert response.status_code in (503, 429), response.text
            await asyncio.sleep(0.2)

    async def send_stops(self, events: list[dict[str, Any]], until: asyncio.Event) -> None:
        """Numbers reply STOP while their messages are being sent, spread over the posting."""
        numbers = sorted({e["offeror"]["phone"] for e in events})
        chosen = self.rng.sample(numbers, min(STOPS, len(numbers)))
        async with httpx.AsyncClient(timeout=30) as http:
            for n, number in enumerate(chosen, start=1):
                while len(self.tally.answers) < EVENTS * n / (len(chosen) + 1):
                    if until.is_set():
                        return
                    await asyncio.sleep(0.1)
                api = self.apis[n % 2]
                url = f"{api}/v1/providers/ovh/{self.token}/stop"
                for _ in range(40):
                    try:
                        response = await http.get(url, params={"sender": number})
                    except httpx.TransportError:
                        await asyncio.sleep(0.2)
                        continue
                    if response.status_code == 200:
                        self.tally.stops[number] = time.time()
                        break
                    await asyncio.sleep(0.2)

    async def run_campaigns(self, events: list[dict[str, Any]], until: asyncio.Event) -> None:
        """A quarter into the posting, two campaigns; the second is cancelled a second later."""
        numbers = sorted({e[role]["phone"] for e in events for role in ("asker", "offeror")})
        chosen = self.rng.sample(numbers, min(CAMPAIGN_ROWS, len(numbers)))
        while len(self.tally.answers) < EVENTS / 4:
            if until.is_set():
                return
            await asyncio.sleep(0.2)
        auth = {"Authorization": f"Bearer {self.api_key}"}
        async with httpx.AsyncClient(timeout=30) as http:
            for n in range(2):
                body = {
                    "name": f"chaos-{n}",
                    "text": f"Spring sale {n}: -20% on every tour this week.",
                    "csv": "number\n" + "\n".join(chosen),
                    "quiet_hours": False,
                }
                answer = await self.call(http, "POST", "/v1/campaigns", auth, body, (202,))
                campaign = answer.json()
                self.tally.campaigns[campaign["id"]] = campaign["summary"]["recipients"]
            await asyncio.sleep(1.0)
            path = f"/v1/campaigns/{campaign['id']}/cancel"
            cancel = await self.call(http, "POST", path, auth, None, (200, 409))
            self.tally.campaign_cancel = cancel.status_code

    async def call(
        self,
        http: httpx.AsyncClient,
        method: str,
        path: str,
        auth: dict[str, str],
        body: dict[str, Any] | None,
        expected: tuple[int, ...],
    ) -> httpx.Response:
        """One API call, retried through 503, 429 and dropped connections."""
        for attempt in range(40):
            try:
                response = await http.request(
                    method, f"{self.apis[attempt % 2]}{path}", json=body, headers=auth
                )
            except httpx.TransportError:
                await asyncio.sleep(0.2)
                continue
            if response.status_code in expected:
                return response
            assert response.status_code in (429, 503), response.text
            await asyncio.sleep(0.2)
        raise AssertionError(f"{method} {path} never answered")

    async def lock_messages(self, engine: AsyncEngine, until: asyncio.Event) -> None:
        """Halfway through, hold ACCESS EXCLUSIVE on the messages table for LOCK_S."""
        while len(self.tally.answers) < EVENTS / 2:
            if until.is_set():
                return
            await asyncio.sleep(0.2)
        began = time.monotonic()
        async with engine.connect() as connection, connection.begin():
            await connection.execute(text("LOCK TABLE messages IN ACCESS EXCLUSIVE MODE"))
            await asyncio.sleep(LOCK_S)
        self.tally.locked_s = time.monotonic() - began
        self.tally.lock_released_at = time.time()
        released = time.monotonic()
        async with httpx.AsyncClient(timeout=10) as http:
            while True:
                answers = []
                for api in self.apis:
                    try:
                        answers.append((await http.get(f"{api}/readyz")).status_code)
                    except httpx.TransportError:
                        answers.append(0)
                if answers == [200, 200]:
                    self.tally.ready_again_s = time.monotonic() - released
                    return
                if time.monotonic() - released > 120:
                    return
                await asyncio.sleep(0.5)

    async def kill_workers(self, until: asyncio.Event) -> None:
        """SIGKILL a worker each time another part of the events is answered; restart it."""
        for n in range(1, KILLS + 1):
            while len(self.tally.answers) < EVENTS * n / (KILLS + 1):
                if until.is_set():
                    return
                await asyncio.sleep(0.2)
            victim = self.rng.choice(self.workers)
            victim.kill()
            self.tally.kills += 1
            await asyncio.sleep(0.5)
            victim.restart()

    async def drain(self, engine: AsyncEngine) -> dict[str, int]:
        """Wait until no message is waiting to be sent or waiting for its report."""
        deadline = time.monotonic() + DRAIN_DEADLINE_S
        while True:
            counts = await status_counts(engine)
            if not counts.get("pending") and not await campaigns_creating(engine):
                return counts
            for worker in self.workers:
                assert worker.running, f"{worker.name} died\n{worker.log_tail()}"
            if time.monotonic() > deadline:
                stuck = await stuck_messages(engine)
                raise AssertionError(
                    f"not settled after {DRAIN_DEADLINE_S:.0f}s: {counts}\n{stuck}"
                )
            await asyncio.sleep(1.0)


# Messages still to send now or waiting for their report; reminders queued for
# days later are not.
PENDING = (
    "status IN ('sending', 'submitted') "
    "OR (status = 'queued' AND due_at < now() + interval '1 hour')"
)


async def status_counts(engine: AsyncEngine) -> dict[str, int]:
    async with engine.connect() as connection:
        rows = await connection.execute(
            text(f"SELECT status, {PENDING}, count(*) FROM messages GROUP BY 1, 2")  # noqa: S608
        )
        counts: Counter[str] = Counter()
        for status, pending, count in rows:
            counts[status] += count
            counts["pending"] += count if pending else 0
        return dict(counts)


async def campaigns_creating(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int(
            await connection.scalar(
                text("SELECT count(*) FROM campaigns WHERE status = 'creating'")
            )
            or 0
        )


async def stuck_messages(engine: AsyncEngine) -> str:
    async with engine.connect() as connection:
        rows = await connection.execute(
            text(
                "SELECT id, status, attempts, uncertain, last_error, provider_id, due_at "  # noqa: S608
                f"FROM messages WHERE {PENDING} LIMIT 10"
            )
        )
        return "\n".join(str(tuple(row)) for row in rows)


@dataclass(frozen=True)
class Stored:
    id: str
    status: str
    reason: str | None
    to: str
    provider_id: str | None
    credits: Decimal
    kind: str
    due_at: datetime | None
    tags: frozenset[str | None]  # its own, and its batch's
    client: str
    told: int  # status_sequence: the statuses its client was told of
    campaign_id: str | None


async def stored_messages(engine: AsyncEngine) -> dict[str, Stored]:
    async with engine.connect() as connection:
        rows = await connection.execute(
            text(
                "SELECT m.id, status, reason, to_number, provider_id, credits, kind, due_at,"
                " provider_tag, job_tag, c.name, status_sequence, campaign_id"
                " FROM messages m JOIN api_clients c ON c.id = m.client_id"
            )
        )
        found = {}
        for row in rows:
            mid, status, reason, to, provider_id, credits, kind, due_at = row[:8]
            found[mid] = Stored(
                mid,
                status,
                reason,
                to,
                provider_id,
                credits,
                kind,
                due_at,
                tags=frozenset({row[8], row[9]}),
                client=row[10],
                told=row[11],
                campaign_id=row[12],
            )
        return found


async def webhooks_settle(engine: AsyncEngine) -> dict[str, int]:
    """Wait until no webhook is left to deliver; the deliveries by status."""
    deadline = time.monotonic() + DRAIN_DEADLINE_S
    while True:
        async with engine.connect() as connection:
            rows = await connection.execute(
                text("SELECT status, count(*) FROM webhook_deliveries GROUP BY 1")
            )
            counts = {status: count for status, count in rows}
        if not counts.get("pending") and not counts.get("sending"):
            return counts
        if time.monotonic() > deadline:
            async with engine.connect() as connection:
                rows = await connection.execute(
                    text(
                        "SELECT attempts, next_attempt_at - now(), last_status_code, last_error"
                        " FROM webhook_deliveries WHERE status <> 'delivered' LIMIT 5"
                    )
                )
                stuck = [tuple(row) for row in rows]
            raise AssertionError(f"webhooks not delivered: {counts} {stuck}")
        await asyncio.sleep(1.0)


async def ledger_facts(engine: AsyncEngine) -> dict[str, Any]:
    async with engine.connect() as connection:
        client = (
            await connection.execute(
                text("SELECT id, quota, balance FROM api_clients WHERE name = 'chaos'")
            )
        ).one()
        ledger_sum = await connection.scalar(
            text("SELECT coalesce(sum(delta), 0) FROM credit_ledger WHERE client_id = :id"),
            {"id": client[0]},
        )
        kinds = await connection.execute(
            text("SELECT message_id, kind FROM credit_ledger WHERE message_id IS NOT NULL")
        )
        by_message: dict[str, set[str]] = {}
        for message_id, kind in kinds:
            by_message.setdefault(message_id, set()).add(kind)
        unapplied = await connection.scalar(
            text("SELECT count(*) FROM delivery_reports WHERE NOT applied")
        )
        reports = await connection.scalar(text("SELECT count(*) FROM delivery_reports"))
        # Messages whose SMS id a report moved (the answer's order was wrong), and
        # receivers the answer left out (looked up).
        corrected = await connection.scalar(
            text(
                "SELECT count(DISTINCT a.message_id) FROM send_attempts a"
                " JOIN messages m ON m.id = a.message_id"
                " WHERE a.outcome = 'accepted' AND a.provider_id <> m.provider_id"
            )
        )
        unnamed = await connection.scalar(
            text(
                "SELECT count(*) FROM send_attempts"
                " WHERE error = 'the answer does not name this receiver'"
            )
        )
    return {
        "quota": Decimal(client[1]),
        "balance": Decimal(client[2]),
        "ledger_sum": Decimal(ledger_sum),
        "by_message": by_message,
        "unapplied_reports": unapplied,
        "reports": reports,
        "ids_corrected": corrected,
        "unnamed": unnamed,
    }


def check(chaos: Chaos, stored: dict[str, Stored], facts: dict[str, Any], fake: Any) -> str:
    """Every promise checked; the summary line. Raises with every broken promise listed."""
    tally = chaos.tally
    sent: list[dict[str, Any]] = fake["sent"]
    stats: dict[str, Any] = fake["stats"]
    broken: list[str] = []

    def expect(holds: bool, problem: str) -> None:
        if not holds:
            broken.append(problem)

    expect(not tally.server_errors, f"the API answered 5xx: {tally.server_errors[:3]}")
    expect(not tally.mismatched, f"replays answered other messages: {tally.mismatched[:3]}")
    expect(len(tally.answers) == EVENTS, "every event was acknowledged")

    acknowledged = {mid for ids in tally.answers.values() for mid in ids}
    # A campaign's 202 acknowledges the messages its rows become.
    expect(len(tally.campaigns) == 2, f"campaigns not accepted: {tally.campaigns}")
    by_campaign = Counter(m.campaign_id for m in stored.values() if m.campaign_id)
    acknowledged |= {m.id for m in stored.values() if m.campaign_id in tally.campaigns}
    ran = next(iter(tally.campaigns), "")
    expect(
        by_campaign[ran] == tally.campaigns.get(ran),
        f"campaign: {by_campaign[ran]} messages for {tally.campaigns.get(ran)} recipients",
    )
    expect(tally.campaign_cancel in (200, 409), f"campaign cancel: {tally.campaign_cancel}")
    missing = acknowledged - set(stored)
    not_final = {mid for mid in acknowledged & set(stored) if stored[mid].status not in FINAL}
    lost = len(missing) + len(not_final)
    expect(not missing, f"acknowledged but not stored: {sorted(missing)[:3]}")
    expect(not not_final, f"not final: {[stored[m] for m in sorted(not_final)[:3]]}")
    # The gateway's own reminders are the only messages no answer listed; they are
    # queued for later or cancelled (a replay or a duplicate created nothing).
    extra = [stored[mid] for mid in set(stored) - acknowledged]
    unexplained = [m for m in extra if m.kind != "reminder"]
    expect(not unexplained, f"{len(unexplained)} messages nobody was told about")
    later = datetime.now(UTC) + timedelta(hours=1)
    early = [m for m in extra if m.status not in FINAL and (m.due_at or later) < later]
    expect(not early, f"reminders due now and not sent: {early[:3]}")

    # OVHcloud took each SMS once, and the gateway knows each one it took.
    per_key = Counter((sms["tag"], sms["receiver"]) for sms in sent)
    twice = [key for key, n in per_key.items() if n > 1]
    expect(stats["duplicates"] == 0 and not twice, f"sent more than once: {twice[:5]}")
    by_provider_id: dict[str, list[Stored]] = {}
    for message in stored.values():
        if message.provider_id is not None:
            by_provider_id.setdefault(message.provider_id, []).append(message)
    unowned = [sms for sms in sent if len(by_provider_id.get(str(sms["id"]), [])) != 1]
    # An SMS no message owns is, when an owned one went to the same number with the same
    # text, the same message sent a second time (under another tag).
    owned_texts = Counter((sms["receiver"], sms["message"]) for sms in sent if sms not in unowned)
    resent = [sms for sms in unowned if owned_texts[(sms["receiver"], sms["message"])]]
    # Copies beyond the first: under the same tag, or under another one.
    same_tag = set(twice)
    other_tag = [sms for sms in resent if (sms["tag"], sms["receiver"]) not in same_tag]
    copies = sum(n - 1 for n in per_key.values() if n > 1) + len(other_tag)
    expect(
        not unowned,
        f"{len(unowned)} SMS sent that no single message owns ({len(other_tag)} resent under "
        f"another tag): {[(s['tag'], s['receiver']) for s in unowned[:3]]}",
    )
    wrong_number = [
        sms
        for sms in sent
        if len(by_provider_id.get(str(sms["id"]), [])) == 1
        and by_provider_id[str(sms["id"])][0].to != sms["receiver"]
    ]
    expect(not wrong_number, f"SMS ids adopted by the wrong message: {wrong_number[:3]}")
    sent_ids = {str(sms["id"]) for sms in sent}
    phantom = [m for m in by_provider_id if m not in sent_ids]
    expect(not phantom, f"messages with an SMS id OVHcloud never gave: {phantom[:3]}")

    # Every report applied: the SMS's final state is its message's.
    delivered_at_ovh = {str(sms["id"]) for sms in sent if sms["deliveryReceipt"] == 1}
    delivered = {m.provider_id for m in stored.values() if m.status == "delivered"}
    expect(
        delivered == delivered_at_ovh,
        f"{len(delivered_at_ovh - delivered)} delivered at OVHcloud are not here, "
        f"{len(delivered - delivered_at_ovh)} the other way",
    )
    expect(facts["unapplied_reports"] == 0, f"{facts['unapplied_reports']} reports unapplied")
    # The faults bit: batches were answered out of order, receivers left out.
    expect(facts["ids_corrected"] > 0, "no SMS id was corrected by a report")
    expect(facts["unnamed"] > 0, "no receiver was left out of an answer")

    # Credits: quota minus what billed messages cost, and the ledger adds up.
    by_message: dict[str, set[str]] = facts["by_message"]
    # The balance checked is the main client's; the hooked one is billed the same way.
    mine = [m for m in stored.values() if m.client == "chaos"]
    billed = [m for m in mine if by_message.get(m.id) == {"reserve"}]
    refunded = [m for m in mine if by_message.get(m.id) == {"reserve", "refund"}]
    delivered_messages = [m for m in stored.values() if m.status == "delivered"]
    unbilled = [m for m in delivered_messages if by_message.get(m.id) != {"reserve"}]
    expect(not unbilled, f"delivered but not billed exactly once: {unbilled[:3]}")
    spent = sum((m.credits for m in billed), Decimal(0))
    expect(
        facts["balance"] == facts["quota"] - spent,
        f"balance {facts['balance']} != quota {facts['quota']} - charged {spent}",
    )
    expect(
        facts["balance"] == facts["ledger_sum"],
        f"balance {facts['balance']} != ledger {facts['ledger_sum']}",
    )

    cancelled_late, sent_after_stop = check_cancels_and_stops(chaos, stored, sent, expect)
    out_of_order = check_webhooks(chaos, stored, fake["webhooks"], expect)
    expect(chaos.tally.ready_again_s is not None, "/readyz never answered 200 after the lock")
    resumed = sum(1 for sms in sent if _at(sms) > chaos.tally.lock_released_at)
    expect(resumed > 0, "nothing was sent after the lock")

    statuses = Counter(m.status for m in stored.values() if m.id in acknowledged)
    faults = stats.get("faults", {})
    elapsed = time.monotonic() - chaos.started
    summary = (
        f"chaos: events={EVENTS} posted={tally.posted} accepted={tally.accepted} "
        f"replayed={tally.replayed} retried={tally.retried} api_503={tally.answered_503} "
        f"messages={len(acknowledged)} {dict(sorted(statuses.items()))} "
        f"reminders={len(extra)} sent={len(sent)} duplicates={copies} "
        f"lost={lost} dlr_pushed={stats['dlr_pushed']} dlr_failed={stats['dlr_failed']} "
        f"dlr_stored={facts['reports']} dlr_unapplied={facts['unapplied_reports']} "
        f"refunded={len(refunded)} credits_charged={spent} "
        f"ids_corrected={facts['ids_corrected']} unnamed_receivers={facts['unnamed']} "
        f"faults={sum(faults.values())} {dict(sorted(faults.items()))} "
        f"worker_kills={tally.kills} clock_ahead={AHEAD if chaos.clock_ahead else 'off'} "
        f"cancels={dict(sorted(Counter(tally.cancels.values()).items()))} "
        f"sent_after_cancel={cancelled_late} stops={len(tally.stops)} "
        f"sent_after_stop={sent_after_stop} campaigns={tally.campaigns} "
        f"campaign_messages={dict(by_campaign)} campaign_cancel={tally.campaign_cancel} "
        f"webhooks={len(chaos.receiver.events)} "
        f"webhooks_refused={chaos.receiver.refused} webhook_out_of_order={out_of_order} "
        f"lock={tally.locked_s:.0f}s ready_after_lock={tally.ready_again_s}s "
        f"sent_after_lock={resumed} posting={tally.posting_s:.0f}s "
        f"settling={tally.settling_s:.0f}s elapsed={elapsed:.0f}s"
    )
    record_summary(summary if not broken else f"{summary} FAILED")
    assert not broken, summary + "\n" + "\n".join(broken)
    return summary


def _at(sms: dict[str, Any]) -> float:
    """When OVHcloud took the SMS (whole seconds)."""
    return datetime.fromisoformat(sms["creationDatetime"]).timestamp()


def check_cancels_and_stops(
    chaos: Chaos, stored: dict[str, Stored], sent: list[dict[str, Any]], expect: Any
) -> tuple[int, int]:
    """Nothing sent after a 2xx cancel that ended it, nor after a STOP; the two counts."""
    by_receiver: dict[str, list[dict[str, Any]]] = {}
    for sms in sent:
        by_receiver.setdefault(sms["receiver"], []).append(sms)
    late: list[str] = []
    for message_id, answer in chaos.tally.cancels.items():
        message = stored[message_id]
        if answer == 200:
            expect(message.status == "cancelled", f"cancelled with 200, now {message}")
        if answer in (200, 202) and message.status == "cancelled":
            gone = [s for s in by_receiver.get(message.to, []) if s["tag"] in message.tags]
            late += [message_id] if gone else []
    expect(not late, f"sent although cancelled: {late[:3]}")
    # Cancelled means never sent, whoever cancelled it (a DELETE, a campaign, a booking).
    taken = [
        message.id
        for message in stored.values()
        if message.status == "cancelled"
        and any(s["tag"] in message.tags for s in by_receiver.get(message.to, []))
    ]
    expect(not taken, f"cancelled, though OVHcloud took it: {taken[:3]}")
    # A send under way at the STOP may still reach OVHcloud, within its deadline.
    window = float(GATEWAY_SETTINGS["lease_seconds"]) / 2 + 1.0
    after = [
        sms
        for number, stopped in chaos.tally.stops.items()
        for sms in by_receiver.get(number, [])
        if _at(sms) > stopped + window
    ]
    expect(not after, f"sent after a STOP: {[(s['receiver'], s['tag']) for s in after[:3]]}")
    return len(late), len(after)


def check_webhooks(
    chaos: Chaos, stored: dict[str, Stored], deliveries: dict[str, int], expect: Any
) -> int:
    """Each message's webhooks, by sequence: 1, 2… each status once, the final one last."""
    expect(not deliveries.get("failed"), f"webhooks given up: {deliveries}")
    events = chaos.receiver.status_events()
    wrong: list[tuple[str, Any]] = []
    for message in stored.values():
        if message.client != "hooked":
            continue
        got = events.get(message.id, [])
        sequences = [sequence for sequence, _ in got]
        statuses = [status for _, status in got]
        finals = [status for status in statuses if status in FINAL]
        in_order = (
            sequences == list(range(1, message.told + 1))
            and len(set(statuses)) == len(statuses)
            and (not finals or (len(finals) == 1 and statuses[-1] in FINAL))
            and (not statuses or statuses[-1] == message.status)
        )
        if not in_order:
            wrong.append((message.id, got))
    expect(not wrong, f"{len(wrong)} messages' webhooks out of order: {wrong[:3]}")
    return len(wrong)


async def scenario(chaos: Chaos) -> str:
    """Post, kill, wait until settled, then check; the summary line."""
    events = make_events(EVENTS, chaos.rng)
    engine = create_async_engine(chaos.database_url, pool_size=3)
    await chaos.receiver.start()
    try:
        settled = asyncio.Event()
        meddlers = [
            asyncio.create_task(chaos.kill_workers(settled)),
            asyncio.create_task(chaos.send_stops(events, settled)),
            asyncio.create_task(chaos.lock_messages(engine, settled)),
            asyncio.create_task(chaos.run_campaigns(events, settled)),
        ]
        try:
            begun = time.monotonic()
            await chaos.post_all(events)
            chaos.tally.posting_s = time.monotonic() - begun
            await meddlers[2]  # the lock is released before the drain is timed
            await chaos.drain(engine)
            chaos.tally.settling_s = time.monotonic() - begun - chaos.tally.posting_s
        finally:
            settled.set()
            await asyncio.gather(*meddlers)
        # Late and duplicate reports still on their way.
        await asyncio.sleep(FAULTS["dlr"]["late_s"] + 1.0)
        deliveries = await webhooks_settle(engine)
        async with httpx.AsyncClient(base_url=chaos.fake_url, timeout=30) as http:
            fake = {
                "sent": (await http.get("/_control/sent")).json(),
                "stats": (await http.get("/_control/stats")).json(),
                "webhooks": deliveries,
            }
        stored = await stored_messages(engine)
        facts = await ledger_facts(engine)
    finally:
        await engine.dispose()
        await chaos.receiver.stop()
    return check(chaos, stored, facts, fake)


def test_nothing_lost_nothing_sent_twice_under_chaos(tmp_path: Path) -> None:
    server_url = postgres_server_url()
    assert server_url is not None
    database = own_postgres_database(server_url, "smsgw_chaos", asynchronous_commit=True)
    with database as database_url, process_group() as processes:
        chaos = Chaos(tmp_path, database_url, processes)
        chaos.start()
        asyncio.run(scenario(chaos))
