"""Uncertain sends: looked up within a share of the budget, settled, never resent blindly.

A "minute" of the call budget is simulated by emptying ``provider_call_windows``,
as the turn of the minute does; everything else is the real dispatcher.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta
from decimal import Decimal

import httpx
import pytest
from sqlalchemy import delete, update

from smsgateway.db import utcnow
from smsgateway.messages import lookups
from smsgateway.messages.dispatcher import Dispatcher
from smsgateway.models.messages import Message
from smsgateway.models.providers import ProviderCallWindow
from smsgateway.providers.base import OutgoingStatus, TransientProviderError
from smsgateway.providers.fake import FakeProvider
from smsgateway.runtime import Runtime
from tests.factories import make_client
from tests.helpers import balance, make_due, send_message, stored_message, stored_messages

BATCH_TEXT = "The pool is closed today."
LOOKUPS = ("find_by_tag", "outgoing", "pending_jobs", "pending_job")


class CountingProvider(FakeProvider):
    """Counts every call by operation, as the call budget sees them."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: Counter[str] = Counter()

    async def send(self, job):  # type: ignore[no-untyped-def]
        self.calls["send"] += 1
        return await super().send(job)

    async def find_by_tag(self, tag: str) -> list[str]:
        self.calls["find_by_tag"] += 1
        return await super().find_by_tag(tag)

    async def outgoing(self, provider_id: str) -> OutgoingStatus | None:
        self.calls["outgoing"] += 1
        return await super().outgoing(provider_id)

    async def pending_jobs(self) -> list[str]:
        self.calls["pending_jobs"] += 1
        return await super().pending_jobs()

    async def pending_job(self, job_id: str) -> str | None:
        self.calls["pending_job"] += 1
        return await super().pending_job(job_id)

    def lookups(self) -> int:
        return sum(self.calls[name] for name in LOOKUPS)


async def _next_minute(runtime: Runtime) -> None:
    async with runtime.sessionmaker() as session, session.begin():
        await session.execute(delete(ProviderCallWindow))


async def _run_minute(runtime: Runtime, dispatcher: Dispatcher, passes: int = 8) -> None:
    """Passes until the minute's budget is spent or nothing is left to do."""
    for _ in range(passes):
        await make_due(runtime)
        if not await dispatcher.run_once():
            return


async def _lost_batch(
    http: httpx.AsyncClient,
    auth: dict[str, str],
    runtime: Runtime,
    dispatcher: Dispatcher,
    provider: FakeProvider,
    size: int,
) -> list[str]:
    """``size`` messages with one text, sent as one job whose answer is lost."""
    ids = [
        (await send_message(http, auth, to=f"+3361200{n:04d}", text=BATCH_TEXT))["id"]
        for n in range(size)
    ]
    provider.fail_after_accept_next = [TransientProviderError("read timeout", uncertain=True)]
    await dispatcher.run_once()
    stored = await stored_messages(runtime)
    assert all(stored[i].uncertain and stored[i].status == "queued" for i in ids)
    return ids


async def _others(http: httpx.AsyncClient, auth: dict[str, str], count: int) -> list[str]:
    return [
        (await send_message(http, auth, to=f"+3361300{n:04d}", text=f"Other text {n}"))["id"]
        for n in range(count)
    ]


async def test_a_lost_batch_of_12_settles_under_the_default_budget_and_starves_nothing(
    http: httpx.AsyncClient, auth: dict[str, str], runtime: Runtime
) -> None:
    """60 calls a minute (the default); look-ups get a quarter of them."""
    provider = CountingProvider()
    runtime.provider = provider
    runtime.settings.provider.calls_per_minute = 60
    dispatcher = Dispatcher(runtime, worker_id="w1")
    batch = await _lost_batch(http, auth, runtime, dispatcher, provider, 12)
    others = await _others(http, auth, 30)
    await _next_minute(runtime)
    sends_before = provider.calls["send"]

    await _run_minute(runtime, dispatcher)

    stored = await stored_messages(runtime)
    for message_id in batch:
        message = stored[message_id]
        assert message.status == "submitted", message.last_error
        # Adopted with the id OVHcloud gave this very receiver.
        assert provider.receivers[message.provider_id or ""] == message.to
    assert {stored[i].status for i in others} == {"submitted"}
    # One listing and one look-up per SMS, shared by the 12: nothing repeated.
    assert provider.lookups() == 13
    assert provider.calls["send"] - sends_before == 30  # the batch never went again


async def test_a_look_up_cut_short_by_its_share_resumes_where_it_stopped(
    http: httpx.AsyncClient, auth: dict[str, str], runtime: Runtime
) -> None:
    if (second := utcnow().second) >= 45:  # the real minute must not turn mid-run
        await asyncio.sleep(61 - second)
    provider = CountingProvider()
    runtime.provider = provider
    runtime.settings.provider.calls_per_minute = 60
    dispatcher = Dispatcher(runtime, worker_id="w1")
    batch = await _lost_batch(http, auth, runtime, dispatcher, provider, 40)
    others = await _others(http, auth, 30)

    per_minute: list[int] = []
    for _ in range(4):
        await _next_minute(runtime)
        before = provider.lookups()
        await _run_minute(runtime, dispatcher)
        per_minute.append(provider.lookups() - before)
        if per_minute == [15]:
            # The other traffic went out in the first minute, beside the look-ups.
            stored = await stored_messages(runtime)
            assert {stored[i].status for i in others} == {"submitted"}

    # 41 calls (one listing, 40 SMS) at 15 a minute; what was learnt was kept.
    assert per_minute == [15, 15, 11, 0]
    stored = await stored_messages(runtime)
    assert {stored[i].status for i in batch} == {"submitted"}
    assert Counter(job.tag for job in provider.sent).most_common(1)[0][1] == 1


async def test_a_job_still_pending_at_the_provider_is_waited_for_not_resent(
    http: httpx.AsyncClient,
    auth: dict[str, str],
    runtime: Runtime,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(lookups, "RECHECK_SECONDS", 0.2)
    provider = CountingProvider()
    runtime.provider = provider
    dispatcher = Dispatcher(runtime, worker_id="w1")
    to = "+33612000001"
    message_id = (await send_message(http, auth, to=to, text="Queued at OVHcloud"))["id"]
    # OVHcloud took the job and holds it: not listed under the tag, but pending.
    provider.fail_next = [TransientProviderError("read timeout", uncertain=True)]
    await dispatcher.run_once()
    provider.pending["901"] = to
    for _ in range(3):
        await make_due(runtime)
        await dispatcher.run_once()
    waiting = await stored_message(runtime, message_id)
    assert (waiting.status, waiting.uncertain) == ("queued", True)
    assert waiting.last_error == "pending at the provider"
    assert provider.calls["send"] == 1

    # The job runs: it leaves the pending list and shows under the tag.
    del provider.pending["901"]
    provider.ids_by_tag[waiting.job_tag or ""] = ["901"]
    provider.receivers["901"] = to
    await asyncio.sleep(0.3)  # what was seen is now old enough to be looked at again
    await make_due(runtime)
    await dispatcher.run_once()
    adopted = await stored_message(runtime, message_id)
    assert (adopted.status, adopted.provider_id) == ("submitted", "901")
    assert provider.calls["send"] == 1


async def test_nothing_found_is_resent_only_a_listing_lag_after_the_pending_check(
    http: httpx.AsyncClient, auth: dict[str, str], runtime: Runtime
) -> None:
    provider = CountingProvider()
    runtime.provider = provider
    runtime.settings.provider.listing_lag_seconds = 0.5
    dispatcher = Dispatcher(runtime, worker_id="w1")
    message_id = (await send_message(http, auth, to="+33612000002", text="Lost"))["id"]
    provider.fail_next = [TransientProviderError("connection reset", uncertain=True)]
    await dispatcher.run_once()
    await make_due(runtime)
    checked = utcnow()
    await dispatcher.run_once()
    held = await stored_message(runtime, message_id)
    assert (held.status, held.last_error) == ("queued", "not listed yet")
    assert held.due_at is not None
    # Held until a listing made the lag after the pending jobs were seen.
    assert 0.4 < (held.due_at - checked).total_seconds() < 0.6
    assert provider.calls["send"] == 1

    # Once the lag has passed, one more listing proves it absent, and it goes.
    await asyncio.sleep(0.6)
    await make_due(runtime)
    await dispatcher.run_once()
    sent = await stored_message(runtime, message_id)
    assert sent.status == "submitted"
    assert provider.calls["send"] == 2


async def test_an_uncertain_message_ends_within_one_settle_time_past_its_validity(
    http: httpx.AsyncClient, runtime: Runtime, provider: FakeProvider, dispatcher: Dispatcher
) -> None:
    """No budget for look-ups, ever: it is held, then expires, its charge kept."""
    shop = await make_client(runtime, "u", quota=Decimal(5))
    message_id = (await send_message(http, shop.auth, to="+33612000003", text="Lost"))["id"]
    provider.fail_next = [TransientProviderError("read timeout", uncertain=True)]
    await dispatcher.run_once()
    runtime.settings.provider.calls_per_minute = 1
    runtime.settings.dispatch.uncertain_settle_seconds = 600
    # The look-ups' only call of their window is spent.
    assert await dispatcher.delivery._spend_lookup() == 0
    async with runtime.sessionmaker() as session, session.begin():
        await session.execute(
            update(Message)
            .where(Message.id == message_id)
            .values(valid_until=utcnow() - timedelta(seconds=10), due_at=utcnow())
        )
    await dispatcher.run_once()
    held = await stored_message(runtime, message_id)
    assert (held.status, held.last_error) == ("queued", "throttled")
    assert held.valid_until is not None and held.due_at is not None
    assert held.due_at <= held.valid_until + timedelta(seconds=600)

    async with runtime.sessionmaker() as session, session.begin():
        await session.execute(
            update(Message)
            .where(Message.id == message_id)
            .values(valid_until=utcnow() - timedelta(seconds=601), due_at=utcnow())
        )
    await dispatcher.run_once()
    ended = await stored_message(runtime, message_id)
    assert (ended.status, ended.reason) == ("expired", "validity_exceeded")
    assert await balance(runtime, shop.id) == Decimal(4)  # it may have gone: charge kept
