"""Delivering the webhook outbox: claim due rows, POST them signed, retry with backoff.

Delivery is at least once: a receiver may see an event again (after a
timeout, or a crash between its 2xx and our commit) and should deduplicate
on the event ``id``.

Clients are kept apart. A delivery has ``SMSGW_WEBHOOK_TIMEOUT_SECONDS`` in
all, from connecting to the answer's status line (a receiver that drips its
answer is cut), and the answer's body is never read. Each worker has at most
``SMSGW_WEBHOOK_PER_CLIENT_CONCURRENCY`` deliveries of one client in flight,
and a pass does not wait for the deliveries it starts: a receiver that never
answers holds its own client's slots, not the others' webhooks.

Each attempt goes to the client's current URL; a client whose URL was
removed, or that was disabled, has its pending deliveries ended ``failed``.
What a client is told of a failure (``last_error``) is a class of error, with
no network detail, so the error list cannot be used to map a network.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import String, and_, case, or_, select, type_coerce, update
from sqlalchemy.ext.asyncio import AsyncSession

from smsgateway import sealing
from smsgateway.db import utcnow
from smsgateway.models.clients import ApiClient
from smsgateway.models.webhooks import WebhookDelivery
from smsgateway.runtime import Runtime
from smsgateway.webhooks.outbound import BlockedDestination, pin
from smsgateway.webhooks.signing import SIGNATURE_HEADER, signature_header
from smsgateway.workers.claim import claim_rows
from smsgateway.workers.loop import SupervisedLoop, error_backoff
from smsgateway.workers.retry import RetryPolicy

log = logging.getLogger(__name__)

MAX_IN_FLIGHT = 32  # deliveries in flight per worker, every client together


@dataclass(frozen=True, slots=True)
class _Due:
    id: str
    url: str
    event_type: str
    payload: dict[str, Any]
    attempts: int
    secret: str
    client_id: str


class WebhookSender:
    def __init__(self, runtime: Runtime, http: httpx.AsyncClient, worker_id: str) -> None:
        self.runtime = runtime
        self.http = http
        self.worker_id = worker_id
        settings = runtime.settings
        self.retry = RetryPolicy(
            base_seconds=settings.webhooks.retry_base_seconds,
            max_seconds=settings.webhooks.retry_max_seconds,
            max_attempts=settings.webhooks.max_attempts,
        )
        self.loop = SupervisedLoop(
            "webhook sender", self._pass, backoff=error_backoff(settings.worker.poll_seconds)
        )
        self._in_flight: dict[asyncio.Task[None], str] = {}  # task -> its client

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop`` is set; the deliveries under way finish first."""
        try:
            await self.loop.run(stop)
        finally:
            if self._in_flight:
                await asyncio.gather(*self._in_flight, return_exceptions=True)

    async def _pass(self) -> float:
        """Start what is due, up to the slots free; do not wait for the deliveries."""
        poll = self.runtime.settings.worker.poll_seconds
        room = MAX_IN_FLIGHT - len(self._in_flight)
        if room <= 0:
            await asyncio.wait(self._in_flight, timeout=poll, return_when=asyncio.FIRST_COMPLETED)
            return 0.0
        due = await self._claim(room, busy=self._busy_clients(), per_client=True)
        for item in due:
            task = asyncio.create_task(self._deliver(item))
            self._in_flight[task] = item.client_id
            task.add_done_callback(self._in_flight.pop)
        # Straight on while there is a backlog; otherwise poll.
        return 0.0 if len(due) == room else poll

    def _busy_clients(self) -> set[str]:
        """Clients with every one of their slots in flight on this worker."""
        per_client = self.runtime.settings.webhooks.per_client_concurrency
        counts: dict[str, int] = {}
        for client_id in self._in_flight.values():
            counts[client_id] = counts.get(client_id, 0) + 1
        return {client_id for client_id, n in counts.items() if n >= per_client}

    async def run_once(self, limit: int = 20) -> int:
        """Claim and deliver up to ``limit`` due webhooks, waiting for them. Returns how many."""
        due = await self._claim(limit, busy=set(), per_client=False)
        await asyncio.gather(*(self._deliver(item) for item in due))
        return len(due)

    async def _claim(self, limit: int, busy: set[str], *, per_client: bool) -> list[_Due]:
        now = utcnow()
        lease = timedelta(seconds=self.runtime.settings.worker.lease_seconds)
        ready = or_(
            and_(WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= now),
            and_(WebhookDelivery.status == "sending", WebhookDelivery.lease_until < now),
        )
        if busy:
            ready = and_(ready, WebhookDelivery.client_id.not_in(busy))
        claim = claim_rows(
            WebhookDelivery.id,
            ready,
            order_by=WebhookDelivery.next_attempt_at,
            limit=limit,
            name="due_webhooks",
            recheck=ready,
        )
        async with self.runtime.sessionmaker() as session, session.begin():
            rows = (
                await session.execute(
                    claim.values(
                        status="sending",
                        lease_owner=self.worker_id,
                        lease_until=now + lease,
                        attempts=WebhookDelivery.attempts + 1,
                    ).returning(
                        WebhookDelivery.id,
                        WebhookDelivery.url,
                        WebhookDelivery.event_type,
                        WebhookDelivery.payload,
                        WebhookDelivery.attempts,
                        WebhookDelivery.client_id,
                    )
                )
            ).all()
            if not rows:
                return []
            clients = {
                client.id: client
                for client in (
                    await session.execute(
                        select(
                            ApiClient.id,
                            ApiClient.webhook_url,
                            # Opened row by row below: one unreadable secret stops
                            # only its own client's webhooks.
                            type_coerce(ApiClient.webhook_secret, String).label("sealed"),
                            ApiClient.disabled_at,
                        ).where(ApiClient.id.in_({row.client_id for row in rows}))
                    )
                ).all()
            }
            due, ended, over = self._take(rows, clients, per_client)
            await _put_back(session, over, ended)
        return due

    def _take(
        self, rows: Any, clients: dict[str, Any], per_client: bool
    ) -> tuple[list[_Due], dict[str, str], list[str]]:
        """What to deliver, at its client's current URL; what to end, and why; what to put back.

        With ``per_client`` a client gets no more rows than its free slots on
        this worker (``run_once`` takes every row).
        """
        due: list[_Due] = []
        ended: dict[str, str] = {}
        over: list[str] = []
        slots = self.runtime.settings.webhooks.per_client_concurrency
        held = Counter(self._in_flight.values())
        for row in rows:
            client = clients.get(row.client_id)
            if client is None or client.disabled_at is not None:
                ended[row.id] = "client disabled"
            elif not client.webhook_url:
                ended[row.id] = "webhook URL removed"
            elif per_client and held[row.client_id] >= slots:
                over.append(row.id)
            elif (secret := _secret(client)) is None:
                ended[row.id] = "secret unreadable"
            else:
                held[row.client_id] += 1
                due.append(
                    _Due(
                        row.id,
                        client.webhook_url,
                        row.event_type,
                        row.payload,
                        row.attempts,
                        secret,
                        row.client_id,
                    )
                )
        return due, ended, over

    async def _deliver(self, item: _Due) -> None:
        body = json.dumps(item.payload, separators=(",", ":"), sort_keys=True).encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "smsgateway-webhooks",
            "Smsgw-Event-Id": item.id,
            "Smsgw-Event-Type": item.event_type,
            SIGNATURE_HEADER: signature_header(item.secret, int(utcnow().timestamp()), body),
        }
        status_code, error = await self._post(item, body, headers)
        now = utcnow()
        values: dict[str, Any] = {
            "url": item.url,
            "lease_owner": None,
            "lease_until": None,
            "last_status_code": status_code,
            "last_error": error,
        }
        if error is None:
            values.update(status="delivered", delivered_at=now, next_attempt_at=None)
        elif self.retry.exhausted(item.attempts):
            values.update(status="failed", next_attempt_at=None)
            log.warning("webhook %s failed for good after %d attempts", item.id, item.attempts)
        else:
            delay = self.retry.delay(item.attempts)
            values.update(status="pending", next_attempt_at=now + timedelta(seconds=delay))
        async with self.runtime.sessionmaker() as session, session.begin():
            await session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id == item.id, WebhookDelivery.lease_owner == self.worker_id)
                .values(**values)
                .execution_options(synchronize_session=False)
            )

    async def _post(
        self, item: _Due, body: bytes, headers: dict[str, str]
    ) -> tuple[int | None, str | None]:
        """POST within the delivery's deadline: its status code, and an error class or None."""
        settings = self.runtime.settings.webhooks
        try:
            async with asyncio.timeout(settings.timeout_seconds):
                target = await pin(item.url, allow_private=settings.allow_private_networks)
                request = self.http.build_request(
                    "POST",
                    target.url,
                    content=body,
                    headers={**headers, **target.headers},
                    extensions=target.extensions,
                )
                # The status line is all that counts: the body is never read.
                response = await self.http.send(request, stream=True)
                await response.aclose()
        except BlockedDestination:
            return None, "address not allowed"
        except TimeoutError:
            return None, "timed out"
        except httpx.HTTPError as exc:
            log.info("webhook %s not delivered: %s", item.id, type(exc).__name__)
            return None, "no HTTP answer"
        if 200 <= response.status_code < 300:
            return response.status_code, None
        return response.status_code, f"HTTP {response.status_code}"


async def _put_back(session: AsyncSession, over: list[str], ended: dict[str, str]) -> None:
    """Rows claimed past their client's slots go back as they were; ``ended`` end failed."""
    if over:
        await session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id.in_(over), WebhookDelivery.status == "sending")
            .values(
                status="pending",
                lease_owner=None,
                lease_until=None,
                attempts=WebhookDelivery.attempts - 1,
            )
            .execution_options(synchronize_session=False)
        )
    if ended:
        await session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id.in_(list(ended)), WebhookDelivery.status == "sending")
            .values(
                status="failed",
                lease_owner=None,
                lease_until=None,
                next_attempt_at=None,
                attempts=WebhookDelivery.attempts - 1,
                last_error=case(*((WebhookDelivery.id == i, why) for i, why in ended.items())),
            )
            .execution_options(synchronize_session=False)
        )


def _secret(client: Any) -> str | None:
    """The client's webhook secret, or None when no key of SMSGW_SECRET_KEY opens it."""
    try:
        return sealing.unseal(client.sealed) if client.sealed else ""
    except sealing.SealedUnreadable as exc:
        log.error("client %s: webhook secret unreadable (%s)", client.id, exc)
        return None
