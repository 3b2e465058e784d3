"""Batches: delivery reports confirm, and correct, which SMS id belongs to which message.

OVHcloud answers a job with its ids in the order of ``validReceivers``. Were it
ever to answer in another order, each message would hold a neighbour's id and
take its reports. Every report names its receiver, so the first report of a
misplaced id puts it right.
"""

from __future__ import annotations

from decimal import Decimal

import httpx

from smsgateway.config import Settings
from smsgateway.messages.dispatcher import Dispatcher
from smsgateway.providers.base import JobResult, OutgoingJob
from smsgateway.providers.fake import FakeProvider
from smsgateway.runtime import Runtime, build_runtime
from tests.conftest import CALLBACK_TOKEN
from tests.factories import make_client
from tests.helpers import balance, make_due, send_message, stored_message

DLR_URL = f"/v1/providers/ovh/{CALLBACK_TOKEN}/dlr"
TEXT = "Your booking starts tomorrow."
ANNA, BRUNO, CLARA = "+33612000011", "+33612000012", "+33612000013"
DELIVERED, FAILED = 1, 2


def _real_id(provider: FakeProvider, receiver: str) -> str:
    return next(sms_id for sms_id, to in provider.receivers.items() if to == receiver)


async def _report(
    http: httpx.AsyncClient, provider: FakeProvider, receiver: str, dlr: int, tag: str
) -> None:
    params = {
        "id": _real_id(provider, receiver),
        "dlr": str(dlr),
        "ptt": "4" if dlr == DELIVERED else "5",
        "receiver": receiver.replace("+", "00"),  # as OVHcloud may write it
        "tag": tag,
        "date": "2026-12-03 10:00:00",
    }
    response = await http.get(DLR_URL, params=params)
    assert response.status_code == 200, response.text


async def _batch(http: httpx.AsyncClient, auth: dict[str, str]) -> dict[str, str]:
    return {
        to: (await send_message(http, auth, to=to, text=TEXT))["id"] for to in (ANNA, BRUNO, CLARA)
    }


async def test_reports_put_right_ids_answered_in_another_order(
    http: httpx.AsyncClient,
    auth: dict[str, str],
    runtime: Runtime,
    provider: FakeProvider,
    dispatcher: Dispatcher,
) -> None:
    provider.reverse_ids = True
    ids = await _batch(http, auth)
    await dispatcher.run_once()
    assert len(provider.sent) == 1
    tag = provider.sent[0].tag
    anna = await stored_message(runtime, ids[ANNA])
    assert anna.provider_id == _real_id(provider, CLARA)  # the answer's order was wrong

    await _report(http, provider, ANNA, DELIVERED, tag)
    await _report(http, provider, CLARA, FAILED, tag)
    await _report(http, provider, BRUNO, DELIVERED, tag)

    for to, status in ((ANNA, "delivered"), (BRUNO, "delivered"), (CLARA, "failed")):
        message = await stored_message(runtime, ids[to])
        assert (message.status, message.provider_id) == (status, _real_id(provider, to))


class ReportsBeforeAnswering(FakeProvider):
    """Reports reach the gateway before the job's answer does (and in reverse order)."""

    def __init__(self) -> None:
        super().__init__()
        self.reverse_ids = True
        self.http: httpx.AsyncClient | None = None
        self.outcomes: dict[str, int] = {}

    async def send(self, job: OutgoingJob) -> JobResult:
        result = await super().send(job)
        assert self.http is not None
        for receiver, dlr in self.outcomes.items():
            await _report(self.http, self, receiver, dlr, job.tag)
        return result


async def test_reports_that_came_first_put_right_ids_too(
    http: httpx.AsyncClient, auth: dict[str, str], settings: Settings
) -> None:
    provider = ReportsBeforeAnswering()
    provider.http = http
    provider.outcomes = {ANNA: DELIVERED, BRUNO: DELIVERED, CLARA: FAILED}
    runtime = build_runtime(settings, provider)
    try:
        ids = await _batch(http, auth)
        await Dispatcher(runtime, worker_id="w1").run_once()
        for to, status in ((ANNA, "delivered"), (BRUNO, "delivered"), (CLARA, "failed")):
            message = await stored_message(runtime, ids[to])
            assert (message.status, message.provider_id) == (status, _real_id(provider, to))
    finally:
        await runtime.aclose()


async def test_a_receiver_the_answer_leaves_out_is_looked_up_not_failed(
    http: httpx.AsyncClient, runtime: Runtime, provider: FakeProvider, dispatcher: Dispatcher
) -> None:
    shop = await make_client(runtime, "u", quota=Decimal(10))
    provider.unnamed = {BRUNO}
    ids = await _batch(http, shop.auth)
    await dispatcher.run_once()
    bruno = await stored_message(runtime, ids[BRUNO])
    assert (bruno.status, bruno.uncertain) == ("queued", True)
    assert await balance(runtime, shop.id) == Decimal(7)  # nothing refunded

    await make_due(runtime)
    await dispatcher.run_once()
    bruno = await stored_message(runtime, ids[BRUNO])
    assert (bruno.status, bruno.provider_id) == ("submitted", _real_id(provider, BRUNO))
    assert len(provider.sent) == 1  # found, not sent again
