"""Look-ups of uncertain sends where their proof is thinnest.

Each test states a promise of README "Delivery: what the service promises"
and a sequence of events that would break it if the look-ups trusted too much:
a recheck, a job that runs while it is read, a tag two jobs share, a receiver
left out on the last attempt, other jobs pending at OVHcloud, a tiny budget.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import update

from smsgateway.db import utcnow
from smsgateway.messages import lookups
from smsgateway.messages.dispatcher import Dispatcher
from smsgateway.models.messages import Message
from smsgateway.providers.base import JobResult, OutgoingJob, TransientProviderError
from smsgateway.providers.fake import FakeProvider
from smsgateway.providers.health import take_call
from smsgateway.runtime import Runtime
from tests.helpers import send_message, stored_message
from tests.messages.test_lookups import CountingProvider


async def _run_when_due(
    runtime: Runtime, dispatcher: Dispatcher, message_id: str, seconds: float
) -> Message:
    """Passes of the real dispatcher, each when the message is due (no ``make_due``)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while loop.time() < end:
        message = await stored_message(runtime, message_id)
        if message.status != "queued":
            return message
        assert message.due_at is not None
        wait = (message.due_at - utcnow()).total_seconds()
        await asyncio.sleep(min(max(0.0, wait) + 0.02, max(0.0, end - loop.time())))
        await dispatcher.run_once()
    return await stored_message(runtime, message_id)


async def test_a_lost_sms_never_taken_is_resent_once_the_listing_lag_has_passed(
    http: httpx.AsyncClient,
    auth: dict[str, str],
    runtime: Runtime,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """README: sent again once proven absent, i.e. after a listing made LAG after a
    pending check. With the default settings the lag (60 s) is longer than the
    recheck (15 s): here 0.6 s and 0.2 s. When the message comes back a lag after
    the check, the pending jobs are older than the recheck; were they checked again
    and the lag counted from that check, it would never be resent. The first clean
    check is the one that counts.
    """
    monkeypatch.setattr(lookups, "RECHECK_SECONDS", 0.2)
    provider = CountingProvider()
    runtime.provider = provider
    runtime.settings.provider.listing_lag_seconds = 0.6
    dispatcher = Dispatcher(runtime, worker_id="w1")
    message_id = (await send_message(http, auth, to="+33612000021", text="Lost"))["id"]
    # The request never reached OVHcloud, but the gateway cannot know it.
    provider.fail_next = [TransientProviderError("connection reset", uncertain=True)]
    await dispatcher.run_once()

    # Ten listing lags: far more than settle (0) + one lag.
    message = await _run_when_due(runtime, dispatcher, message_id, 6.0)

    assert provider.calls["send"] == 2, (message.status, message.last_error, provider.calls)
    assert message.status == "submitted"


class RunsWhileLookedAt(CountingProvider):
    """OVHcloud runs a pending job while the gateway asks for its details.

    ``GET /jobs`` still lists it; ``GET /jobs/{id}`` (a call later) says it is gone,
    because it has just run; it shows in the outgoing list ``lag`` seconds after
    it ran, which is what ``SMSGW_PROVIDER_LISTING_LAG_SECONDS`` assumes.
    """

    def __init__(self, lag: float, call_seconds: float) -> None:
        super().__init__()
        self.lag = lag
        self.call_seconds = call_seconds
        self.listed_from: dict[str, float] = {}  # SMS id -> loop time it shows from
        self.tag_of: dict[str, str] = {}

    async def pending_job(self, job_id: str) -> str | None:
        self.calls["pending_job"] += 1
        await asyncio.sleep(self.call_seconds)  # one HTTPS round trip to OVHcloud
        receiver = self.pending.pop(job_id, None)
        if receiver is not None:
            # It ran just now, during this call.
            self.receivers[job_id] = receiver
            self.listed_from[job_id] = asyncio.get_running_loop().time() + self.lag
        return None

    async def find_by_tag(self, tag: str) -> list[str]:
        self.calls["find_by_tag"] += 1
        now = asyncio.get_running_loop().time()
        shown = [i for i, at in self.listed_from.items() if at <= now and self.tag_of[i] == tag]
        return list(self.ids_by_tag.get(tag, [])) + shown


async def test_a_job_that_runs_between_the_job_list_and_its_details_is_not_resent(
    http: httpx.AsyncClient, auth: dict[str, str], runtime: Runtime
) -> None:
    """No blind resend: "no SMS for it in a listing made LAG after that check".

    A job ``GET /jobs`` listed is read one call (or, cut by the budget, one pass)
    later. One that ran in between is gone by then, and shows in the outgoing
    list only LAG after it ran: dated from ``GET /jobs``, the check would let a
    listing miss it and the message be sent twice. It is dated from the read.
    """
    provider = RunsWhileLookedAt(lag=0.6, call_seconds=0.3)
    runtime.provider = provider
    runtime.settings.provider.listing_lag_seconds = 0.6
    dispatcher = Dispatcher(runtime, worker_id="w1")
    to = "+33612000022"
    message_id = (await send_message(http, auth, to=to, text="Taken, answer lost"))["id"]
    # OVHcloud took the job (id 901) but the answer was lost: it is pending there.
    provider.fail_next = [TransientProviderError("read timeout", uncertain=True)]
    await dispatcher.run_once()
    tag = (await stored_message(runtime, message_id)).job_tag or ""
    provider.pending["901"] = to
    provider.tag_of["901"] = tag

    message = await _run_when_due(runtime, dispatcher, message_id, 3.0)

    assert provider.calls["send"] == 1, "sent twice: OVHcloud had it"
    assert (message.status, message.provider_id) == ("submitted", "901")


async def _due(runtime: Runtime, message_id: str, seconds_ago: float) -> None:
    async with runtime.sessionmaker() as session, session.begin():
        await session.execute(
            update(Message)
            .where(Message.id == message_id)
            .values(due_at=utcnow() - timedelta(seconds=seconds_ago))
        )


async def test_a_message_is_never_adopted_with_the_sms_of_another_job_under_the_same_tag(
    http: httpx.AsyncClient, auth: dict[str, str], runtime: Runtime, dispatcher: Dispatcher
) -> None:
    """Nothing acknowledged is lost; a report is never applied to the wrong message.

    A job's tag is its first message's own tag (``provider_tag``), so a message
    that heads two jobs gives the same tag to both. Matched by receiver only, an
    SMS of the first job to the same number as a member of the second would be
    taken for that member's, marked submitted with its neighbour's SMS id
    though it never went.
    """
    provider = runtime.provider
    assert isinstance(provider, FakeProvider)
    text = "Your booking starts tomorrow."
    ids = [
        (await send_message(http, auth, to=to, text=text))["id"]
        for to in ("+33612000031", "+33612000032")
    ]
    # Job 1 [head, other], under the head's tag: OVHcloud names only the other, and
    # did not take the head.
    provider.unnamed = {"+33612000031", "+33612000032"}
    original_send = provider.send

    async def leave_out_the_head(job: OutgoingJob) -> JobResult:
        provider.unnamed = {job.receivers[0]}
        return await original_send(job)

    provider.send = leave_out_the_head  # type: ignore[method-assign]
    await dispatcher.run_once()
    provider.send = original_send  # type: ignore[method-assign]
    tag = provider.sent[0].tag
    head_to, other_to = provider.sent[0].receivers
    stored = {m.to: m for m in [await stored_message(runtime, i) for i in ids]}
    head, other = stored[head_to], stored[other_to]
    assert head.provider_tag == tag and head.uncertain
    head_sms = next(i for i, to in provider.receivers.items() if to == head_to)
    provider.ids_by_tag[tag].remove(head_sms)
    del provider.receivers[head_sms]
    provider.unnamed = set()

    # Looked up, proven absent, sent again: OVHcloud is unreachable (certainly not sent).
    provider.fail_next = [TransientProviderError("OVH unreachable: ConnectError")]
    await _due(runtime, head.id, 10)
    await dispatcher.run_once()
    back = await stored_message(runtime, head.id)
    assert (back.status, back.uncertain) == ("queued", False)

    # A second message to the other's number, same text: job 2 [head, second] under
    # the same tag, whose request fails with a 502 (it may have been taken; it was not).
    second_id = (await send_message(http, auth, to=other_to, text=text))["id"]
    await _due(runtime, head.id, 10)
    provider.fail_next = [TransientProviderError("HTTP 502", status_code=502, uncertain=True)]
    await dispatcher.run_once()
    assert len(provider.sent) == 1  # the fake records only what it took
    second = await stored_message(runtime, second_id)
    assert (second.status, second.uncertain, second.job_tag) == ("queued", True, tag)

    await _due(runtime, second_id, 1)
    await _due(runtime, head.id, 1)
    await dispatcher.run_once()

    second = await stored_message(runtime, second_id)
    assert second.provider_id != other.provider_id, "adopted the SMS of another message"
    assert any(other_to in job.receivers for job in provider.sent[1:]), "it never went"


async def test_a_receiver_left_out_of_the_answer_on_its_last_attempt_is_looked_up_not_failed(
    http: httpx.AsyncClient, auth: dict[str, str], runtime: Runtime
) -> None:
    """Promise 4: a receiver in neither validReceivers nor invalidReceivers is uncertain.

    Even when its attempts are spent (here the first is the last): were it
    failed (``provider_unavailable``) without a look-up, though OVHcloud took
    it, its reports would match no message.
    """
    runtime.settings.dispatch.max_attempts = 1
    provider = CountingProvider()
    runtime.provider = provider
    dispatcher = Dispatcher(runtime, worker_id="w1")
    text = "Your booking starts tomorrow."
    anna = (await send_message(http, auth, to="+33612000051", text=text))["id"]
    (await send_message(http, auth, to="+33612000052", text=text))["id"]
    provider.unnamed = {"+33612000051"}  # taken, but left out of the answer
    await dispatcher.run_once()

    message = await _run_when_due(runtime, dispatcher, anna, 1.0)

    assert message.status != "failed", message.reason
    assert message.status == "submitted" and provider.lookups() > 0


async def test_a_look_up_costs_calls_for_its_own_batch_not_for_the_traffic_pending_at_ovh(
    http: httpx.AsyncClient, auth: dict[str, str], runtime: Runtime
) -> None:
    """README "One look-up per tag": a lost batch of N costs about N + 3 calls.

    ``GET /jobs`` lists every pending job of the account; under steady traffic
    most are the gateway's own recent sends, whose ids (a job's id is its SMS
    id) it holds. Those are matched without a call (``GET /jobs/{id}``):
    otherwise one look-up would cost a call per such job, and with more new
    jobs a minute than the look-up share (15 of 60) it would never complete.
    """
    provider = CountingProvider()
    runtime.provider = provider
    dispatcher = Dispatcher(runtime, worker_id="w1")
    others = [
        (await send_message(http, auth, to=f"+3361300{n:04d}", text=f"Other {n}"))["id"]
        for n in range(20)
    ]
    await dispatcher.run_once()
    held = [(await stored_message(runtime, i)) for i in others]
    assert all(m.status == "submitted" for m in held)
    # OVHcloud has not run them yet: they are its pending jobs, known to the gateway.
    provider.pending = {m.provider_id or "": m.to for m in held}

    lost = (await send_message(http, auth, to="+33612000061", text="Lost"))["id"]
    provider.fail_next = [TransientProviderError("connection reset", uncertain=True)]
    await dispatcher.run_once()
    before = provider.lookups()
    message = await _run_when_due(runtime, dispatcher, lost, 1.0)

    assert message.status == "submitted"
    assert provider.lookups() - before <= 1 + 3, provider.calls


async def test_look_ups_never_take_more_than_their_share_of_a_small_budget(
    runtime: Runtime, dispatcher: Dispatcher
) -> None:
    """README "A bounded share": at most LOOKUP_SHARE of CALLS_PER_MINUTE.

    At 1 call a minute and a share of 0.25, look-ups may have one call in four
    minutes: the share is counted over a window of minutes, not rounded up to
    a whole call every minute. Eight minutes, a look-up tried in each: two go,
    and other traffic still finds its call in the six others.
    """
    runtime.settings.provider.calls_per_minute = 1
    runtime.settings.provider.lookup_share = 0.25
    start = utcnow().replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    granted = others = 0
    for minute in range(8):
        at = start + timedelta(minutes=minute, seconds=30)
        granted += await dispatcher.delivery._spend_lookup(at) == 0
        async with runtime.sessionmaker() as session, session.begin():
            others += await take_call(session, runtime.provider.name, 1, at) == 0
    assert (granted, others) == (2, 6)
