"""SMS ids in the wrong place: an answer out of order meets a take-over, a shared tag,
a report of a message that holds no id, a job OVHcloud shows late.

Each test names the promise at stake ("Delivery: what the service promises")
and the events that would break it; all run the real dispatcher and report code.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal

import httpx
import pytest
from sqlalchemy import update

from smsgateway.db import utcnow
from smsgateway.messages import lookups
from smsgateway.messages.dispatcher import Dispatcher
from smsgateway.messages.lifecycle import claim
from smsgateway.messages.queue import Claimed
from smsgateway.messages.reports import ReportIn, record_report
from smsgateway.models.messages import Message
from smsgateway.providers.base import (
    JobResult,
    OutgoingJob,
    OutgoingStatus,
    TransientProviderError,
)
from smsgateway.providers.fake import FakeProvider
from smsgateway.runtime import Runtime
from tests.factories import make_client
from tests.helpers import bearer, send_message, stored_message, stored_messages
from tests.messages.test_report_races import delivered_report

TEXT = "Your booking starts tomorrow."
ANNA, BRUNO = "+33612000071", "+33612000072"


async def _out_of_order_as_bruno_is_taken_over(
    http: httpx.AsyncClient, auth: dict[str, str], runtime: Runtime
) -> tuple[str, str, list[Claimed]]:
    """Job [Anna, Bruno] answered with its ids in the other order (README: "if
    OVHcloud ever answers a batch's ids in another order"), so Anna's message
    is stored with Bruno's SMS id; Bruno's lease ran out just as the answer
    came (on PostgreSQL the take-over claim skips Anna's row, locked by the
    store, and takes Bruno's): his outcome is not stored, and worker w2 holds
    him, uncertain. Returns Anna's and Bruno's ids and what w2 claimed."""
    provider = runtime.provider
    assert isinstance(provider, FakeProvider)
    provider.reverse_ids = True
    anna = (await send_message(http, auth, to=ANNA, text=TEXT))["id"]
    bruno = (await send_message(http, auth, to=BRUNO, text=TEXT))["id"]
    taken_over: list[Claimed] = []
    original_send = provider.send

    async def answer_as_the_lease_ends(job: OutgoingJob) -> JobResult:
        result = await original_send(job)
        async with runtime.sessionmaker() as session, session.begin():
            await session.execute(
                update(Message)
                .where(Message.id.in_([anna, bruno]))
                .values(lease_until=utcnow() - timedelta(seconds=1))
            )
            await session.execute(
                update(Message)
                .where(Message.id == anna)
                .values(due_at=utcnow() + timedelta(seconds=5))
            )
            taken_over.extend(
                await claim(
                    session, worker="w2", now=utcnow(), lease=timedelta(seconds=60), limit=1
                )
            )
        return result

    provider.send = answer_as_the_lease_ends  # type: ignore[method-assign]
    await Dispatcher(runtime, worker_id="w1").run_once()
    provider.send = original_send  # type: ignore[method-assign]
    provider.reverse_ids = False
    assert [m.id for m in taken_over] == [bruno] and taken_over[0].uncertain
    bruno_sms = next(i for i, to in provider.receivers.items() if to == BRUNO)
    assert (await stored_message(runtime, anna)).provider_id == bruno_sms  # out of order
    assert (await stored_message(runtime, bruno)).provider_id is None  # lease lost
    return anna, bruno, taken_over


async def test_a_message_whose_sms_id_a_sibling_holds_by_an_answer_out_of_order_is_not_resent(
    http: httpx.AsyncClient, auth: dict[str, str], runtime: Runtime
) -> None:
    """No blind resend.

    Bruno's SMS is listed under the job's tag, with his number, but Anna's
    message holds its id (the answer was out of order), and "an SMS id another
    message holds is never adopted": proven absent, he is sent a second time.
    The holder's number is not the receiver OVHcloud lists for the SMS, so the
    holder is wrong, not the listing.
    """
    provider = runtime.provider
    assert isinstance(provider, FakeProvider)
    _, _, taken_over = await _out_of_order_as_bruno_is_taken_over(http, auth, runtime)

    await Dispatcher(runtime, worker_id="w2").delivery.send(taken_over)

    sent_to_bruno = sum(BRUNO in job.receivers for job in provider.sent)
    assert sent_to_bruno == 1, "Bruno's SMS was sent twice"


async def test_a_pending_job_a_sibling_holds_by_an_answer_out_of_order_is_read_not_trusted(
    http: httpx.AsyncClient, auth: dict[str, str], runtime: Runtime
) -> None:
    """No blind resend: "no pending job for the receiver at a check".

    As above, but OVHcloud has not run Bruno's job yet: it is in ``GET /jobs``,
    not in the outgoing list. Its id is held by Anna's message, so
    ``_known_jobs`` takes it for a job to Anna's number without reading it;
    the check finds nothing pending for Bruno, the listing nothing for him,
    and he is sent again while his SMS waits at OVHcloud. The gateway's
    mapping of a batch's ids is exactly what an out-of-order answer makes
    wrong, so it cannot prove a job is for another receiver.
    """
    provider = runtime.provider
    assert isinstance(provider, FakeProvider)
    _, _, taken_over = await _out_of_order_as_bruno_is_taken_over(http, auth, runtime)
    # Bruno's job is taken, not run yet: pending, not listed.
    bruno_sms = next(i for i, to in provider.receivers.items() if to == BRUNO)
    for ids in provider.ids_by_tag.values():
        if bruno_sms in ids:
            ids.remove(bruno_sms)
    del provider.receivers[bruno_sms]
    provider.pending[bruno_sms] = BRUNO

    await Dispatcher(runtime, worker_id="w2").delivery.send(taken_over)

    sent_to_bruno = sum(BRUNO in job.receivers for job in provider.sent)
    assert sent_to_bruno == 1, "sent again while OVHcloud still had Bruno's job pending"
    bruno = await stored_message(runtime, taken_over[0].id)
    assert (bruno.status, bruno.uncertain) == ("queued", True), bruno.last_error


async def test_a_not_billed_report_of_a_shared_tag_never_deadlocks_with_the_store_of_a_job(
    http: httpx.AsyncClient, runtime: Runtime, is_postgres: bool
) -> None:
    """No deadlock between the dispatcher and report handlers (lock order).

    ``lock_job`` is taken by a report before any row it writes, but by the
    dispatcher's store only after it has written the job's rows, refunds
    included (the client's balance row). A head that heads two jobs gives
    both its tag: while job 2 [head, invalid, other] is stored (the invalid
    receiver refunded, so the balance row locked, then ``lock_job``), a "not
    billed" report of job 1 holds ``lock_job`` and refunds: balance row.
    Each waits for the other; PostgreSQL aborts one.
    """
    if not is_postgres:
        pytest.skip("row and advisory locks: PostgreSQL")
    provider = runtime.provider
    assert isinstance(provider, FakeProvider)
    shop = await make_client(runtime, "shop", quota=Decimal(100))
    auth = bearer(shop.api_key)
    dispatcher = Dispatcher(runtime, worker_id="w1")
    first = [
        (await send_message(http, auth, to=to, text=TEXT))["id"]
        for to in ("+33612000081", "+33612000082")
    ]
    original_send = provider.send

    async def leave_out_the_head(job: OutgoingJob) -> JobResult:
        provider.unnamed = {job.receivers[0]}
        return await original_send(job)

    provider.send = leave_out_the_head  # type: ignore[method-assign]
    await dispatcher.run_once()
    provider.send = original_send  # type: ignore[method-assign]
    provider.unnamed = set()
    tag = provider.sent[0].tag
    head_to, other_to = provider.sent[0].receivers
    stored = {m.to: m for m in [await stored_message(runtime, i) for i in first]}
    head, other = stored[head_to], stored[other_to]
    assert head.uncertain and other.provider_id is not None
    # As in test_lookup_proofs: proven absent, resent, certainly refused: queued, certain.
    async with runtime.sessionmaker() as session, session.begin():
        await session.execute(
            update(Message)
            .where(Message.id == head.id)
            .values(uncertain=False, uncertain_since=None, due_at=utcnow() - timedelta(seconds=10))
        )
    invalid_to, third_to = "+33612000083", "+33612000084"
    provider.invalid_receivers = {invalid_to}
    for to in (invalid_to, third_to):
        await send_message(http, auth, to=to, text=TEXT)

    def report(**fields: object) -> ReportIn:
        values: dict[str, object] = {
            "provider": "ovh",
            "provider_id": other.provider_id,
            "dlr": 4,
            "ptt": None,
            "reported_at": "2026-12-03 10:00:00",
            "description": None,
            "params": {},
        }
        values.update(fields)
        return ReportIn(**values)  # type: ignore[arg-type]

    racing: list[asyncio.Task[None]] = []
    held = runtime.sessionmaker()

    async def job_2_answered_as_reports_come(job: OutgoingJob) -> JobResult:
        result = await original_send(job)
        assert job.tag == tag and len(job.receivers) == 3
        # Another report of the other's SMS (no tag: it names no job) is being stored...
        await record_report(held, report(dlr=4))
        # ... while its "not billed" report waits for it, holding its job's lock.
        racing.append(
            asyncio.create_task(
                _record_and_commit(
                    runtime, report(dlr=16, ptt=0, tag=tag, receiver=other_to, reported_at="x")
                )
            )
        )
        await asyncio.sleep(0.3)
        racing.append(asyncio.create_task(_commit_later(held, 0.7)))
        return result

    failures: list[BaseException] = []
    store = dispatcher.delivery._store

    async def store_and_record(*args, **kwargs):  # type: ignore[no-untyped-def]
        try:
            await store(*args, **kwargs)
        except Exception as exc:
            failures.append(exc)
            raise

    dispatcher.delivery._store = store_and_record  # type: ignore[method-assign]
    provider.send = job_2_answered_as_reports_come  # type: ignore[method-assign]
    try:
        await dispatcher.run_once()
        provider.send = original_send  # type: ignore[method-assign]
        outcomes = await asyncio.gather(*racing, return_exceptions=True)
    finally:
        await held.close()

    assert not failures, [str(f).splitlines()[0] for f in failures]
    assert not [o for o in outcomes if isinstance(o, BaseException)], outcomes
    after = {m.to: m for m in (await stored_messages(runtime)).values()}
    assert after[head_to].status == "submitted", "the job's answer was not stored"
    assert after[third_to].status == "submitted"
    assert after[other_to].status == "failed"


async def _record_and_commit(runtime: Runtime, report: ReportIn) -> None:
    async with runtime.sessionmaker() as session, session.begin():
        await record_report(session, report)


async def _commit_later(session, seconds: float) -> None:  # type: ignore[no-untyped-def]
    await asyncio.sleep(seconds)
    await session.commit()


async def test_a_report_naming_a_sibling_without_an_id_is_not_applied_to_the_holder(
    http: httpx.AsyncClient, auth: dict[str, str], runtime: Runtime
) -> None:
    """A report is never applied to the wrong message.

    As above: Anna's message holds Bruno's SMS id, Bruno's has none (his
    outcome was lost with his lease). Bruno's "delivered" report names his
    number and the job's tag: ``_owner`` looks for a sibling to swap with
    among those holding an id, finds none, and applies it to Anna's message,
    which OVHcloud never said was delivered.
    """
    provider = runtime.provider
    assert isinstance(provider, FakeProvider)
    anna, _, _ = await _out_of_order_as_bruno_is_taken_over(http, auth, runtime)
    delivered = delivered_report(provider, BRUNO, provider.sent[0].tag)
    async with runtime.sessionmaker() as session, session.begin():
        await record_report(session, delivered)

    assert (await stored_message(runtime, anna)).status != "delivered", "Bruno's report"


class TakenLate(FakeProvider):
    """OVHcloud still processing a request the gateway gave up on (a read timeout).

    The job shows in ``GET /jobs`` ``appears`` seconds after the answer was
    lost, runs ``runs`` seconds after, and is listed ``lag`` seconds after it ran.
    """

    def __init__(self, appears: float, runs: float, lag: float) -> None:
        super().__init__()
        self.appears, self.runs, self.lag = appears, runs, lag
        self.lost_at: float | None = None
        self.job: tuple[str, str, str] | None = None  # id, receiver, tag

    def _now(self) -> float:
        return asyncio.get_running_loop().time() - (self.lost_at or 0.0)

    async def send(self, job: OutgoingJob) -> JobResult:
        if self.lost_at is None:
            self.lost_at = asyncio.get_running_loop().time()
            self.sent.append(job)
            self.job = ("late-1", job.receivers[0], job.tag)
            raise TransientProviderError("read timeout", uncertain=True)
        return await super().send(job)

    async def pending_jobs(self) -> list[str]:
        if self.job is not None and self.appears <= self._now() < self.runs:
            return [self.job[0]]
        return []

    async def pending_job(self, job_id: str) -> str | None:
        if self.job is not None and self.appears <= self._now() < self.runs:
            return self.job[1]
        return None

    async def find_by_tag(self, tag: str) -> list[str]:
        listed = list(self.ids_by_tag.get(tag, []))
        if self.job is not None and self.job[2] == tag and self._now() >= self.runs + self.lag:
            listed.append(self.job[0])
        return listed

    async def outgoing(self, provider_id: str) -> OutgoingStatus | None:
        if self.job is not None and provider_id == self.job[0]:
            return OutgoingStatus(provider_id, self.job[1], None, None, self.job[2])
        return await super().outgoing(provider_id)


async def test_a_job_ovh_shows_pending_only_after_the_first_check_is_not_resent(
    http: httpx.AsyncClient,
    auth: dict[str, str],
    runtime: Runtime,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No blind resend; the settle time is there for what shows late.

    A read timeout: OVHcloud was still processing the request when the
    gateway gave up, and its job shows in ``GET /jobs`` a moment later (0.3 s
    here), runs later still (0.8 s), and is listed within the listing lag
    (0.3 s). The first look-up checks the pending jobs at once, before the job
    shows: that clean check is kept ("the first clean check ... is kept") and
    never made again, so once the settle time (1 s) has passed the listing
    alone decides, and the job, listed at 1.1 s, is missed at 1 s: sent
    twice. Before the fix the check was made again on each pass, and the job
    would have been seen pending.
    """
    monkeypatch.setattr(lookups, "RECHECK_SECONDS", 0.2)
    provider = TakenLate(appears=0.3, runs=0.8, lag=0.3)
    runtime.provider = provider
    runtime.settings.provider.listing_lag_seconds = 0.3
    runtime.settings.dispatch.uncertain_settle_seconds = 1.0
    dispatcher = Dispatcher(runtime, worker_id="w1")
    message_id = (await send_message(http, auth, to="+33612000091", text="Late"))["id"]
    await dispatcher.run_once()
    assert (await stored_message(runtime, message_id)).uncertain

    loop = asyncio.get_running_loop()
    end = loop.time() + 3.0
    while loop.time() < end:
        message = await stored_message(runtime, message_id)
        if message.status != "queued":
            break
        assert message.due_at is not None
        await asyncio.sleep(min(0.1, max(0.0, (message.due_at - utcnow()).total_seconds())) + 0.02)
        await dispatcher.run_once()

    assert len(provider.sent) == 1, "sent again: OVHcloud had it"
    message = await stored_message(runtime, message_id)
    assert (message.status, message.provider_id) == ("submitted", "late-1")
