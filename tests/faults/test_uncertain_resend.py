"""A resend whose answer is lost too must be looked up again before a third send.

Found by the chaos test (a tenth of a run's duplicates): a message whose first send
was lost (nothing reached OVHcloud) is looked up, not found, and, once settled, sent
again; that second answer is lost too, though OVHcloud took the SMS. The next attempt
must look the message up again and adopt that SMS. The dispatcher once sent it a
third time instead, for two reasons, both fixed in ``messages/delivery.py``: a
per-tag "not found" cached by ``_lookup`` outlived a send with that tag, and
``uncertain_since`` kept the first uncertain send's time, so the settle time after
the second one had already passed.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import httpx
from sqlalchemy import update

from smsgateway.config import Settings
from smsgateway.db import utcnow
from smsgateway.messages.dispatcher import Dispatcher
from smsgateway.models.messages import Message
from smsgateway.providers.base import JobResult, OutgoingJob, TransientProviderError
from smsgateway.providers.fake import FakeProvider
from smsgateway.runtime import Runtime, build_runtime


async def test_a_lost_resend_is_adopted_not_sent_a_third_time(
    http: httpx.AsyncClient,
    auth: dict[str, str],
    runtime: Runtime,
    provider: FakeProvider,
    dispatcher: Dispatcher,
) -> None:
    response = await http.post(
        "/v1/messages", json={"to": "+33611223344", "text": "Lost twice"}, headers=auth
    )
    assert response.status_code == 202, response.text
    message_id = response.json()["id"]

    async def attempt() -> None:
        async with runtime.sessionmaker() as session, session.begin():
            await session.execute(
                update(Message).where(Message.id == message_id).values(due_at=utcnow())
            )
        await dispatcher.run_once()

    # 1: lost before OVHcloud saw it. 2: looked up (not found), sent again, taken by
    # OVHcloud, answer lost. 3: must find that SMS rather than send it once more.
    provider.fail_next = [TransientProviderError("connection reset", uncertain=True)]
    await attempt()
    provider.fail_after_accept_next = [TransientProviderError("read timeout", uncertain=True)]
    await attempt()
    await attempt()
    await attempt()

    sends = Counter(job.tag for job in provider.sent)
    assert list(sends.values()) == [1], f"sent {sends} times"


class ListsLate(FakeProvider):
    """Lists an SMS under its tag only ``lag`` seconds after taking it, as OVHcloud does."""

    def __init__(self, lag: float) -> None:
        super().__init__()
        self.lag = lag
        self._taken_at: dict[str, float] = {}

    async def send(self, job: OutgoingJob) -> JobResult:
        self._taken_at.setdefault(job.tag, time.monotonic())
        return await super().send(job)

    async def find_by_tag(self, tag: str) -> list[str]:
        if time.monotonic() - self._taken_at.get(tag, 0.0) < self.lag:
            return []
        return await super().find_by_tag(tag)


async def test_a_send_not_listed_yet_is_looked_up_again_after_the_settle_time(
    http: httpx.AsyncClient, auth: dict[str, str], settings: Settings
) -> None:
    """Worker A's send is taken but its answer lost; B looks it up too early (not listed
    yet) and holds it for the settle time. After that B must ask OVHcloud again, not
    trust what it was told before the wait: the chaos test's remaining duplicates.
    """
    provider = ListsLate(lag=0.2)
    runtime = build_runtime(
        settings.model_copy(
            update={
                "dispatch": settings.dispatch.model_copy(update={"uncertain_settle_seconds": 0.4})
            }
        ),
        provider,
    )
    try:
        response = await http.post(
            "/v1/messages", json={"to": "+33611223344", "text": "Listed late"}, headers=auth
        )
        assert response.status_code == 202, response.text
        message_id = response.json()["id"]
        worker_a = Dispatcher(runtime, worker_id="worker-a")
        worker_b = Dispatcher(runtime, worker_id="worker-b")

        async def due_now() -> None:
            async with runtime.sessionmaker() as session, session.begin():
                await session.execute(
                    update(Message).where(Message.id == message_id).values(due_at=utcnow())
                )

        provider.fail_after_accept_next = [TransientProviderError("read timeout", uncertain=True)]
        await worker_a.run_once()  # taken by OVHcloud, answer lost
        await due_now()
        await worker_b.run_once()  # looked up: not listed yet, held for the settle time
        await asyncio.sleep(0.5)  # listed now, and the settle time has passed
        await due_now()
        await worker_b.run_once()  # must look it up again and adopt it

        sends = Counter(job.tag for job in provider.sent)
        assert list(sends.values()) == [1], f"sent {sends} times"
        async with runtime.sessionmaker() as session:
            message = await session.get(Message, message_id)
        assert message is not None and message.status == "submitted"
    finally:
        await runtime.aclose()
