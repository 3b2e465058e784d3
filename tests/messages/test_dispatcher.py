"""The dispatcher: retries, failures, leases, uncertain sends, several workers."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select, update

from smsgateway.config import Settings
from smsgateway.db import utcnow
from smsgateway.messages.dispatcher import Dispatcher
from smsgateway.messages.lifecycle import claim as claim_due
from smsgateway.models.messages import Message, SendAttempt
from smsgateway.providers.base import PermanentProviderError, TransientProviderError
from smsgateway.providers.fake import FakeProvider
from smsgateway.runtime import Runtime, build_runtime
from tests.conftest import booking_event
from tests.helpers import first_message, make_due, stored_message


async def _post(http: httpx.AsyncClient, auth: dict[str, str], event_id: str = "evt-1") -> str:
    message = await first_message(http, auth, booking_event(event_id=event_id))
    return str(message["id"])


async def _attempts(runtime: Runtime, message_id: str) -> list[str]:
    async with runtime.sessionmaker() as session:
        rows = await session.scalars(
            select(SendAttempt.outcome)
            .where(SendAttempt.message_id == message_id)
            .order_by(SendAttempt.id)
        )
        return list(rows)


async def test_sends_a_queued_message_and_stores_the_provider_id(
    http: httpx.AsyncClient,
    auth: dict[str, str],
    dispatcher: Dispatcher,
    provider: FakeProvider,
    runtime: Runtime,
) -> None:
    message_id = await _post(http, auth)
    assert await dispatcher.run_once() == 1
    message = await stored_message(runtime, message_id)
    assert message.status == "submitted"
    assert message.provider_id == "fake-1"
    assert message.submitted_at is not None
    assert message.lease_owner is None
    job = provider.sent[0]
    assert job.receivers == ["+33611223344"]
    assert job.no_stop_clause is True
    assert job.tag == message.provider_tag and len(job.tag) <= 20
    assert await _attempts(runtime, message_id) == ["accepted"]
    assert await dispatcher.run_once() == 0


async def test_transient_failures_are_retried_with_backoff(
    http: httpx.AsyncClient,
    auth: dict[str, str],
    dispatcher: Dispatcher,
    provider: FakeProvider,
    runtime: Runtime,
) -> None:
    provider.fail_next = [
        TransientProviderError("OVH HTTP 500", status_code=500),
        TransientProviderError("connection refused"),
    ]
    message_id = await _post(http, auth)
    before = utcnow()
    await dispatcher.run_once()
    waiting = await stored_message(runtime, message_id)
    assert waiting.status == "queued"
    assert waiting.attempts == 1
    assert waiting.last_error == "OVH HTTP 500"
    assert waiting.due_at is not None and waiting.due_at > before
    assert provider.sent == []
    for _ in range(2):
        await make_due(runtime, message_id)
        await dispatcher.run_once()
    message = await stored_message(runtime, message_id)
    assert message.status == "submitted"
    assert message.attempts == 3
    assert len(provider.sent) == 1
    assert await _attempts(runtime, message_id) == ["transient", "transient", "accepted"]


async def test_permanent_failure_fails_the_message_with_the_reason(
    http: httpx.AsyncClient,
    auth: dict[str, str],
    dispatcher: Dispatcher,
    provider: FakeProvider,
    runtime: Runtime,
) -> None:
    provider.fail_next = [PermanentProviderError("OVH HTTP 400: Invalid message", status_code=400)]
    message_id = await _post(http, auth)
    await dispatcher.run_once()
    message = await stored_message(runtime, message_id)
    assert (message.status, message.reason) == ("failed", "OVH HTTP 400: Invalid message")
    assert message.final_at is not None
    assert await dispatcher.run_once() == 0


async def test_invalid_receiver_fails_the_message(
    http: httpx.AsyncClient,
    auth: dict[str, str],
    dispatcher: Dispatcher,
    provider: FakeProvider,
    runtime: Runtime,
) -> None:
    provider.invalid_receivers = {"+33611223344"}
    message_id = await _post(http, auth)
    await dispatcher.run_once()
    message = await stored_message(runtime, message_id)
    assert (message.status, message.reason) == ("failed", "invalid_receiver")


async def test_gives_up_after_max_attempts(
    http: httpx.AsyncClient,
    auth: dict[str, str],
    provider: FakeProvider,
    runtime: Runtime,
) -> None:
    runtime.settings.dispatch.max_attempts = 2
    dispatcher = Dispatcher(runtime, worker_id="w")
    provider.fail_next = [TransientProviderError("timeout")] * 2
    message_id = await _post(http, auth)
    await dispatcher.run_once()
    await make_due(runtime, message_id)
    await dispatcher.run_once()
    message = await stored_message(runtime, message_id)
    assert message.status == "failed"
    assert message.reason == "provider_unavailable: timeout"
    assert provider.sent == []


async def test_an_answer_lost_after_acceptance_is_adopted_not_resent(
    http: httpx.AsyncClient,
    auth: dict[str, str],
    dispatcher: Dispatcher,
    provider: FakeProvider,
    runtime: Runtime,
) -> None:
    provider.fail_after_accept_next = [TransientProviderError("read timeout", uncertain=True)]
    message_id = await _post(http, auth)
    await dispatcher.run_once()
    waiting = await stored_message(runtime, message_id)
    assert (waiting.status, waiting.uncertain) == ("queued", True)
    await make_due(runtime, message_id)
    await dispatcher.run_once()
    message = await stored_message(runtime, message_id)
    assert message.status == "submitted"
    assert message.provider_id == "fake-1"
    assert len(provider.sent) == 1
    assert await _attempts(runtime, message_id) == ["transient", "adopted"]


async def test_uncertain_send_not_found_at_the_provider_is_sent_again(
    http: httpx.AsyncClient,
    auth: dict[str, str],
    dispatcher: Dispatcher,
    provider: FakeProvider,
    runtime: Runtime,
) -> None:
    provider.fail_next = [TransientProviderError("read timeout", uncertain=True)]
    message_id = await _post(http, auth)
    await dispatcher.run_once()
    await make_due(runtime, message_id)
    await dispatcher.run_once()
    assert (await stored_message(runtime, message_id)).status == "submitted"
    assert len(provider.sent) == 1


async def test_a_dead_workers_lease_is_taken_over_without_sending_twice(
    http: httpx.AsyncClient,
    auth: dict[str, str],
    dispatcher: Dispatcher,
    provider: FakeProvider,
    runtime: Runtime,
) -> None:
    sent_by_dead = await _post(http, auth, "evt-a")
    never_sent = await _post(http, auth, "evt-b")
    # A worker claims both, sends one, and dies before storing anything.
    async with runtime.sessionmaker() as session, session.begin():
        claimed = await claim_due(
            session, worker="dead", now=utcnow(), lease=timedelta(seconds=30), limit=10
        )
    assert {c.id for c in claimed} == {sent_by_dead, never_sent}
    dead_job = next(c for c in claimed if c.id == sent_by_dead)
    from smsgateway.providers.base import OutgoingJob

    await provider.send(
        OutgoingJob(text=dead_job.text, receivers=[dead_job.to], tag=dead_job.provider_tag)
    )
    # While the lease runs, nobody else takes them.
    assert await dispatcher.run_once() == 0
    async with runtime.sessionmaker() as session, session.begin():
        await session.execute(update(Message).values(lease_until=utcnow() - timedelta(seconds=1)))
    assert await dispatcher.run_once() == 2
    first = await stored_message(runtime, sent_by_dead)
    second = await stored_message(runtime, never_sent)
    assert (first.status, first.provider_id) == ("submitted", "fake-1")
    assert second.status == "submitted"
    assert Counter(job.tag for job in provider.sent) == {
        first.provider_tag: 1,
        second.provider_tag: 1,
    }
    assert await _attempts(runtime, sent_by_dead) == ["adopted"]


async def test_run_loop_wakes_up_for_new_work_and_stops_cleanly(
    http: httpx.AsyncClient,
    auth: dict[str, str],
    provider: FakeProvider,
    runtime: Runtime,
) -> None:
    # A poll far longer than the test: only the wake-up (NOTIFY on PostgreSQL,
    # the in-process event on SQLite) can make this message go out in time.
    runtime.settings.worker.poll_seconds = 30
    dispatcher = Dispatcher(runtime, worker_id="looping")
    stop = asyncio.Event()
    loop = asyncio.create_task(dispatcher.run(stop))
    await asyncio.sleep(0.2)
    await _post(http, auth)
    for _ in range(100):
        if provider.sent:
            break
        await asyncio.sleep(0.02)
    assert len(provider.sent) == 1
    stop.set()
    await asyncio.wait_for(loop, timeout=5)


async def test_notify_wakes_a_worker_in_another_process(
    settings: Settings,
    is_postgres: bool,
    http: httpx.AsyncClient,
    auth: dict[str, str],
) -> None:
    if not is_postgres:
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's; SQLite serves one process")
    # The worker has its own engine and wake-up event, as in a separate process.
    other = build_runtime(
        settings.model_copy(
            update={"worker": settings.worker.model_copy(update={"poll_seconds": 30})}
        ),
        provider=FakeProvider(),
    )
    provider = other.provider
    assert isinstance(provider, FakeProvider)
    stop = asyncio.Event()
    loop = asyncio.create_task(Dispatcher(other, worker_id="remote").run(stop))
    try:
        await asyncio.sleep(0.3)  # let it LISTEN
        await _post(http, auth)
        for _ in range(150):
            if provider.sent:
                break
            await asyncio.sleep(0.02)
        assert len(provider.sent) == 1
    finally:
        stop.set()
        await asyncio.wait_for(loop, timeout=5)
        await other.aclose()


async def test_several_workers_never_send_the_same_message_twice(
    settings: Settings,
    http: httpx.AsyncClient,
    auth: dict[str, str],
    runtime: Runtime,
) -> None:
    total = 120
    for index in range(total):
        await _post(http, auth, f"evt-{index}")
    # Three workers, each with its own engine (as separate processes would be)
    # and a provider that takes a little time, so their claims interleave.
    shared = FakeProvider()
    shared.latency_seconds = 0.005
    workers = [
        build_runtime(
            settings.model_copy(
                update={"worker": settings.worker.model_copy(update={"batch_size": 7})}
            ),
            provider=shared,
        )
        for _ in range(3)
    ]
    try:
        await asyncio.gather(
            *(_drain(Dispatcher(w, worker_id=f"w{i}")) for i, w in enumerate(workers))
        )
    finally:
        for worker in workers:
            await worker.engine.dispose()
    tags = Counter(job.tag for job in shared.sent)
    assert len(tags) == total
    assert max(tags.values()) == 1
    async with runtime.sessionmaker() as session:
        statuses = Counter((await session.scalars(select(Message.status))).all())
        owners = Counter((await session.scalars(select(SendAttempt.worker))).all())
    assert statuses == {"submitted": total}
    assert sum(owners.values()) == total


async def _drain(dispatcher: Dispatcher) -> None:
    idle = 0
    while idle < 3:
        idle = idle + 1 if await dispatcher.run_once() == 0 else 0
        await asyncio.sleep(0)


async def test_an_uncertain_send_is_not_resent_before_the_settle_time(
    http: httpx.AsyncClient,
    auth: dict[str, str],
    dispatcher: Dispatcher,
    provider: FakeProvider,
    runtime: Runtime,
) -> None:
    # The provider may list an accepted SMS only once its job has run: an empty
    # lookup right after a lost answer must not trigger a second SMS.
    runtime.settings.dispatch.uncertain_settle_seconds = 120
    provider.fail_next = [TransientProviderError("read timeout", uncertain=True)]
    message_id = await _post(http, auth)
    await dispatcher.run_once()
    await make_due(runtime, message_id)
    await dispatcher.run_once()
    waiting = await stored_message(runtime, message_id)
    assert waiting.status == "queued"
    assert waiting.uncertain is True
    assert waiting.due_at is not None and waiting.uncertain_since is not None
    assert (waiting.due_at - waiting.uncertain_since).total_seconds() == pytest.approx(120)
    assert waiting.attempts == 1  # looking up is not an attempt
    assert provider.sent == []
    # Once the settle time has passed and it is still not listed, it is sent.
    async with runtime.sessionmaker() as session, session.begin():
        await session.execute(
            update(Message)
            .where(Message.id == message_id)
            .values(uncertain_since=utcnow() - timedelta(seconds=121), due_at=utcnow())
        )
    await dispatcher.run_once()
    assert (await stored_message(runtime, message_id)).status == "submitted"
    assert len(provider.sent) == 1
    assert await _attempts(runtime, message_id) == ["transient", "lookup", "accepted"]


async def test_a_claim_never_takes_more_than_its_limit(
    http: httpx.AsyncClient, auth: dict[str, str], runtime: Runtime
) -> None:
    # On PostgreSQL an inlined locking sub-select can be rescanned per row, which
    # once let a claim of 1 take every due message (see messages.queue).
    for index in range(6):
        await _post(http, auth, f"evt-{index}")
    async with runtime.sessionmaker() as session, session.begin():
        first = await claim_due(
            session, worker="a", now=utcnow(), lease=timedelta(seconds=30), limit=1
        )
        second = await claim_due(
            session, worker="a", now=utcnow(), lease=timedelta(seconds=30), limit=3
        )
    assert (len(first), len(second)) == (1, 3)
    assert not {c.id for c in first} & {c.id for c in second}
