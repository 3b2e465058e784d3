"""Attacks on the look-up and report fixes: sequences that break a README promise.

Each test names the promise it breaks ("Delivery: what the service promises")
and the events that lead there; all run the real dispatcher and report code.
"""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy import update

from smsgateway.db import utcnow
from smsgateway.messages.dispatcher import Dispatcher
from smsgateway.messages.lifecycle import claim
from smsgateway.models.messages import Message
from smsgateway.providers.base import JobResult, OutgoingJob
from smsgateway.providers.fake import FakeProvider
from smsgateway.runtime import Runtime
from tests.helpers import send_message, stored_message

TEXT = "Your booking starts tomorrow."
ANNA, BRUNO = "+33612000071", "+33612000072"


async def test_a_message_whose_sms_id_a_sibling_holds_by_an_answer_out_of_order_is_not_resent(
    http: httpx.AsyncClient, auth: dict[str, str], runtime: Runtime
) -> None:
    """No blind resend.

    OVHcloud answers a batch [Anna, Bruno] with its ids in the other order
    (README: "if OVHcloud ever answers a batch's ids in another order"), so
    Anna's message is stored with Bruno's SMS id. Bruno's lease ran out just
    as the answer came (on PostgreSQL the take-over claim skips Anna's row,
    locked by the store, and takes Bruno's): his outcome is not stored, and the
    worker that took him over looks him up. His SMS is listed under the tag,
    with his number, but "an SMS id another message holds is never adopted":
    proven absent, he is sent a second time.
    """
    provider = runtime.provider
    assert isinstance(provider, FakeProvider)
    provider.reverse_ids = True
    anna = (await send_message(http, auth, to=ANNA, text=TEXT))["id"]
    bruno = (await send_message(http, auth, to=BRUNO, text=TEXT))["id"]
    taken_over = []
    original_send = provider.send

    async def answer_as_the_lease_ends(job: OutgoingJob) -> JobResult:
        result = await original_send(job)
        # The lease ends before the answer is stored; another worker claims Bruno.
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
    assert [m.id for m in taken_over] == [bruno] and taken_over[0].uncertain
    bruno_sms = next(i for i, to in provider.receivers.items() if to == BRUNO)
    assert (await stored_message(runtime, anna)).provider_id == bruno_sms  # out of order

    await Dispatcher(runtime, worker_id="w2").delivery.send(taken_over)

    sent_to_bruno = sum(BRUNO in job.receivers for job in provider.sent)
    assert sent_to_bruno == 1, "Bruno's SMS was sent twice"
