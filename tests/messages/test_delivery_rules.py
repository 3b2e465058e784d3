"""Batching, validity, the circuit breaker, the call budget and missing delivery reports."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta
from decimal import Decimal

import httpx
from sqlalchemy import select, update

from smsgateway.db import utcnow
from smsgateway.messages.dispatcher import Dispatcher
from smsgateway.messages.report_checks import ReportChecker
from smsgateway.models.messages import Message, SendAttempt
from smsgateway.providers.base import TransientProviderError
from smsgateway.providers.fake import FakeProvider
from smsgateway.providers.health import circuit_state, take_call
from smsgateway.runtime import Runtime
from tests.conftest import CALLBACK_TOKEN
from tests.factories import make_client
from tests.helpers import balance, make_due, send_message, stored_messages

TEXT = "Pool closed today for maintenance."
NUMBERS = [f"+336110000{n:02d}" for n in range(12)]


async def _send(http: httpx.AsyncClient, auth: dict[str, str], to: str, text: str = TEXT) -> str:
    message_id: str = (await send_message(http, auth, to=to, text=text))["id"]
    return message_id


async def _assert_sent_in_one_job_and_each_adopted(
    runtime: Runtime, provider: FakeProvider
) -> None:
    """One job reached the provider, and each message holds its own receiver's id."""
    stored = await stored_messages(runtime)
    assert {m.status for m in stored.values()} == {"submitted"}
    assert len(provider.sent) == 1
    for message in stored.values():
        assert provider.receivers[message.provider_id or ""] == message.to


async def test_identical_texts_go_as_one_job_with_ids_mapped_back(
    http: httpx.AsyncClient,
    auth: dict[str, str],
    dispatcher: Dispatcher,
    provider: FakeProvider,
    runtime: Runtime,
) -> None:
    runtime.settings.dispatch.batch_max_receivers = 5
    ids = {await _send(http, auth, number): number for number in NUMBERS}
    other = await _send(http, auth, NUMBERS[0], text="Another text")
    await dispatcher.run_once()
    sizes = sorted(len(job.receivers) for job in provider.sent)
    assert sizes == [1, 2, 5, 5]  # 12 identical texts in jobs of at most 5, and the other one
    stored = await stored_messages(runtime)
    for message_id, number in ids.items():
        message = stored[message_id]
        assert message.status == "submitted"
        # Each message got the id the provider gave its own receiver.
        assert provider.receivers[message.provider_id or ""] == number
    assert stored[other].status == "submitted"
    assert len({m.provider_id for m in stored.values()}) == len(stored)


async def test_the_same_number_twice_is_never_in_one_job(
    http: httpx.AsyncClient,
    auth: dict[str, str],
    dispatcher: Dispatcher,
    provider: FakeProvider,
) -> None:
    await _send(http, auth, NUMBERS[0])
    await _send(http, auth, NUMBERS[0])
    await dispatcher.run_once()
    assert [job.receivers for job in provider.sent] == [[NUMBERS[0]], [NUMBERS[0]]]


async def test_a_lost_batch_answer_is_adopted_per_receiver(
    http: httpx.AsyncClient,
    auth: dict[str, str],
    dispatcher: Dispatcher,
    provider: FakeProvider,
    runtime: Runtime,
) -> None:
    for number in NUMBERS[:3]:
        await _send(http, auth, number)
    provider.fail_after_accept_next = [TransientProviderError("read timeout", uncertain=True)]
    await dispatcher.run_once()
    await make_due(runtime)
    await dispatcher.run_once()
    await _assert_sent_in_one_job_and_each_adopted(runtime, provider)  # adopted, not resent


async def test_a_message_past_its_validity_expires_unsent_and_is_refunded(
    http: httpx.AsyncClient,
    runtime: Runtime,
    dispatcher: Dispatcher,
    provider: FakeProvider,
) -> None:
    shop = await make_client(runtime, "v", quota=3)
    message_id = await _send(http, shop.auth, NUMBERS[0])
    async with runtime.sessionmaker() as session, session.begin():
        await session.execute(update(Message).values(valid_until=utcnow() - timedelta(seconds=1)))
    await dispatcher.run_once()
    message = (await stored_messages(runtime))[message_id]
    assert (message.status, message.reason) == ("expired", "validity_exceeded")
    assert provider.sent == []
    assert await balance(runtime, shop.id) == Decimal(3)


async def test_the_circuit_opens_after_repeated_failures_and_closes_after_a_probe(
    http: httpx.AsyncClient,
    auth: dict[str, str],
    provider: FakeProvider,
    runtime: Runtime,
) -> None:
    runtime.settings.provider.circuit_failure_threshold = 3
    runtime.settings.provider.circuit_cooldown_seconds = 30
    dispatcher = Dispatcher(runtime, worker_id="w")
    clock = [1000.0]
    dispatcher.breaker._clock = lambda: clock[0]
    for number in NUMBERS[:3]:
        await _send(http, auth, number, text=f"text for {number}")
    provider.fail_next = [TransientProviderError("OVH HTTP 503", status_code=503)] * 3
    await dispatcher.run_once()
    assert dispatcher.breaker.state == "open"
    async with runtime.sessionmaker() as session:
        assert await circuit_state(session, "fake") == "open"
    ready = (await http.get("/readyz")).json()
    assert ready["provider_circuit"] == "open"
    await make_due(runtime)
    assert await dispatcher.run_once() == 0  # open: nothing is claimed
    clock[0] += 31  # the cooldown has passed
    assert await dispatcher.run_once() == 1  # half-open: one probe
    assert dispatcher.breaker.state == "closed"
    assert await dispatcher.run_once() == 2
    assert len(provider.sent) == 3
    async with runtime.sessionmaker() as session:
        assert await circuit_state(session, "fake") == "closed"


async def test_the_call_budget_holds_across_workers_and_releases_messages(
    http: httpx.AsyncClient,
    auth: dict[str, str],
    provider: FakeProvider,
    runtime: Runtime,
) -> None:
    if (second := utcnow().second) >= 55:  # the whole test inside one minute of the budget
        await asyncio.sleep(61 - second)
    async with runtime.sessionmaker() as session, session.begin():
        assert await take_call(session, "other", 2) == 0
        assert await take_call(session, "other", 2) == 0
        assert 0 < await take_call(session, "other", 2) <= 60
    runtime.settings.provider.calls_per_minute = 2
    dispatcher = Dispatcher(runtime, worker_id="w")
    for number in NUMBERS[:4]:
        await _send(http, auth, number, text=f"text for {number}")
    await dispatcher.run_once()
    assert len(provider.sent) == 2
    stored = await stored_messages(runtime)
    waiting = [m for m in stored.values() if m.status == "queued"]
    assert len(waiting) == 2
    now = utcnow()
    for message in waiting:
        assert message.lease_owner is None  # no lease held while waiting
        assert message.attempts == 0
        assert message.due_at is not None and message.due_at > now
    async with runtime.sessionmaker() as session:
        outcomes = Counter((await session.scalars(select(SendAttempt.outcome))).all())
    assert outcomes == {"accepted": 2, "throttled": 2}


async def test_missing_delivery_reports_are_looked_up(
    http: httpx.AsyncClient,
    auth: dict[str, str],
    dispatcher: Dispatcher,
    provider: FakeProvider,
    runtime: Runtime,
) -> None:
    delivered = await _send(http, auth, NUMBERS[0], text="one")
    silent = await _send(http, auth, NUMBERS[1], text="two")
    stale = await _send(http, auth, NUMBERS[2], text="three")
    await dispatcher.run_once()
    stored = await stored_messages(runtime)
    provider.reports[stored[delivered].provider_id or ""] = (1, 4)
    long_ago = utcnow() - timedelta(hours=2)
    async with runtime.sessionmaker() as session, session.begin():
        await session.execute(update(Message).values(submitted_at=long_ago))
        await session.execute(
            update(Message)
            .where(Message.id == stale)
            .values(submitted_at=utcnow() - timedelta(hours=80))
        )
    checker = ReportChecker(runtime)
    assert await checker.check_once() == 2
    stored = await stored_messages(runtime)
    assert stored[delivered].status == "delivered"
    assert stored[silent].status == "submitted"
    assert stored[silent].checked_at is not None
    assert (stored[stale].status, stored[stale].reason) == ("expired", "no_delivery_report")
    # Checked recently: not looked up again before the period has passed.
    assert await checker.check_once() == 0


async def test_an_uncertain_batch_never_gives_one_receiver_anothers_id(
    http: httpx.AsyncClient,
    auth: dict[str, str],
    dispatcher: Dispatcher,
    provider: FakeProvider,
    runtime: Runtime,
) -> None:
    invalid, valid = NUMBERS[0], NUMBERS[1]
    first = await _send(http, auth, invalid)
    second = await _send(http, auth, valid)
    provider.invalid_receivers = {invalid}
    provider.fail_after_accept_next = [TransientProviderError("read timeout", uncertain=True)]
    await dispatcher.run_once()
    await make_due(runtime)
    await dispatcher.run_once()
    stored = await stored_messages(runtime)
    assert (stored[second].status, stored[second].provider_id) == ("submitted", "fake-1")
    assert (stored[first].status, stored[first].reason) == ("failed", "invalid_receiver")
    assert stored[first].provider_id is None


async def test_a_worker_dying_mid_batch_leaves_each_message_findable(
    http: httpx.AsyncClient,
    auth: dict[str, str],
    dispatcher: Dispatcher,
    provider: FakeProvider,
    runtime: Runtime,
) -> None:
    from smsgateway.messages.delivery import Delivery
    from smsgateway.messages.lifecycle import claim as claim_due

    for number in NUMBERS[:3]:
        await _send(http, auth, number)
    async with runtime.sessionmaker() as session, session.begin():
        claimed = await claim_due(
            session, worker="doomed", now=utcnow(), lease=timedelta(seconds=30), limit=10
        )
    doomed = Delivery(runtime, "doomed", dispatcher.retry, dispatcher.breaker)
    # The doomed worker records the job's tag, sends, and dies before storing anything.
    job = await doomed._renew(claimed, claimed[0].provider_tag)
    from smsgateway.providers.base import OutgoingJob

    await provider.send(
        OutgoingJob(text=TEXT, receivers=[m.to for m in job], tag=claimed[0].provider_tag)
    )
    async with runtime.sessionmaker() as session, session.begin():
        await session.execute(update(Message).values(lease_until=utcnow() - timedelta(seconds=1)))
    await dispatcher.run_once()
    # Each message is adopted from the one job the doomed worker sent: none goes twice.
    await _assert_sent_in_one_job_and_each_adopted(runtime, provider)


async def test_a_message_that_may_have_gone_is_not_cancelled_nor_refunded(
    http: httpx.AsyncClient,
    runtime: Runtime,
    dispatcher: Dispatcher,
    provider: FakeProvider,
) -> None:
    shop = await make_client(runtime, "u", quota=5)
    message_id = await _send(http, shop.auth, NUMBERS[0])
    provider.fail_after_accept_next = [TransientProviderError("read timeout", uncertain=True)]
    await dispatcher.run_once()  # the provider has it; we do not know
    cancel = await http.delete(f"/v1/messages/{message_id}", headers=shop.auth)
    assert cancel.status_code == 202, cancel.text
    assert (cancel.json()["status"], cancel.json()["settle_to"]) == ("queued", "cancelled")
    # A STOP does not end it either while the provider may have it.
    await http.get(f"/v1/providers/ovh/{CALLBACK_TOKEN}/stop", params={"sender": NUMBERS[0]})
    assert (await stored_messages(runtime))[message_id].status == "queued"
    await make_due(runtime, message_id)
    await dispatcher.run_once()  # looked up: the provider had it, so it runs its course
    message = (await stored_messages(runtime))[message_id]
    assert message.status == "submitted"
    assert len(provider.sent) == 1
    assert await balance(runtime, shop.id) == Decimal(4)
