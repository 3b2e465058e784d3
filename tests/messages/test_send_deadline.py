"""A send has one deadline inside its lease; a take-over settles from the old lease's end."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import update

from smsgateway.db import utcnow
from smsgateway.messages.dispatcher import Dispatcher
from smsgateway.messages.lifecycle import claim
from smsgateway.models.messages import Message
from smsgateway.providers.base import JobResult, OutgoingJob
from smsgateway.providers.fake import FakeProvider
from smsgateway.runtime import Runtime
from tests.helpers import send_message, stored_message

LEASE_S = 0.4


class NeverAnswers(FakeProvider):
    """Takes the SMS, then keeps the answer for far longer than any lease."""

    async def send(self, job: OutgoingJob) -> JobResult:
        result = await super().send(job)
        await asyncio.sleep(30)
        return result


@pytest.fixture
def provider() -> FakeProvider:
    return NeverAnswers()


async def test_a_send_with_no_answer_is_cut_at_its_deadline_well_inside_the_lease(
    http: httpx.AsyncClient, auth: dict[str, str], runtime: Runtime
) -> None:
    runtime.settings.worker.lease_seconds = LEASE_S
    message = await send_message(http, auth, to="+33611223344", text="Hello")
    loop = asyncio.get_running_loop()
    began = loop.time()
    await asyncio.wait_for(Dispatcher(runtime, worker_id="w").run_once(), 5)
    took = loop.time() - began
    stored = await stored_message(runtime, message["id"])
    # Back in the queue, looked up before any resend; its lease never ran out.
    assert (stored.status, stored.uncertain, stored.lease_owner) == ("queued", True, None)
    assert "deadline" in (stored.last_error or "")
    assert took < LEASE_S + 1.0


async def test_a_take_over_waits_the_settle_time_from_the_old_lease_end(
    http: httpx.AsyncClient, auth: dict[str, str], runtime: Runtime
) -> None:
    message = await send_message(http, auth, to="+33611223344", text="Hello")
    now = utcnow()
    lease_end = now - timedelta(seconds=1)
    async with runtime.sessionmaker() as session, session.begin():
        await session.execute(
            update(Message)
            .where(Message.id == message["id"])
            .values(
                status="sending",
                lease_owner="stalled-worker",
                lease_until=lease_end,
                # An earlier uncertain send, long settled: must not count any more.
                uncertain=True,
                uncertain_since=now - timedelta(hours=1),
            )
        )
    async with runtime.sessionmaker() as session, session.begin():
        (taken,) = await claim(session, worker="w", now=now, lease=timedelta(seconds=60), limit=10)
    assert taken.uncertain is True
    assert taken.uncertain_since == lease_end


async def test_a_worker_whose_message_was_taken_over_does_not_send_it(
    http: httpx.AsyncClient, auth: dict[str, str], runtime: Runtime
) -> None:
    """Its lease ran out while it waited for a call slot; the new holder owns it now."""
    provider = FakeProvider()
    runtime.provider = provider
    message = await send_message(http, auth, to="+33611223344", text="Hello")
    late = Dispatcher(runtime, worker_id="late-worker")
    async with runtime.sessionmaker() as session, session.begin():
        job = await claim(
            session, worker="late-worker", now=utcnow(), lease=timedelta(seconds=60), limit=10
        )
    async with runtime.sessionmaker() as session, session.begin():
        await session.execute(
            update(Message).where(Message.id == message["id"]).values(lease_owner="new-holder")
        )
    await late.delivery.send(job)
    assert provider.sent == []
    stored = await stored_message(runtime, message["id"])
    assert (stored.status, stored.lease_owner) == ("sending", "new-holder")
