"""Pending settlements (``settle_to``): a STOP or cancel that came during an attempt."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from decimal import Decimal

import httpx
import pytest

from smsgateway.messages.dispatcher import Dispatcher
from smsgateway.providers.base import TransientProviderError
from smsgateway.providers.fake import FakeProvider
from smsgateway.runtime import Runtime
from tests.conftest import CALLBACK_TOKEN
from tests.factories import make_client
from tests.helpers import make_due, send_message, stored_message
from tests.messages.test_cancel_and_stop_win import ActsDuringSend

TO = "+33611223344"


@pytest.fixture
def provider() -> FakeProvider:
    return ActsDuringSend()


INCOMING = f"/v1/providers/ovh/{CALLBACK_TOKEN}/incoming"


def _reply(http: httpx.AsyncClient, text: str, sms_id: str) -> Callable[[], Awaitable[None]]:
    async def reply() -> None:
        response = await http.post(INCOMING, data={"id": sms_id, "sender": TO, "message": text})
        assert response.status_code == 200, response.text

    return reply


async def test_a_start_after_a_stop_during_the_attempt_lets_the_message_go(
    http: httpx.AsyncClient,
    runtime: Runtime,
    dispatcher: Dispatcher,
    provider: ActsDuringSend,
) -> None:
    # STOP then START while the message is being sent; OVHcloud refuses it for now.
    # The number is opted in again when the message comes back to the queue: the
    # STOP recorded during the attempt no longer holds, and it goes.
    shop = await make_client(runtime, "u", quota=Decimal(5))
    message = await send_message(http, shop.auth, to=TO, text="Your booking")
    stop, start = _reply(http, "STOP", "in-1"), _reply(http, "START", "in-2")

    async def both() -> None:
        await stop()
        await start()

    provider.during = both
    provider.fail_next = [TransientProviderError("503 from OVHcloud")]
    await dispatcher.run_once()
    stored = await stored_message(runtime, message["id"])
    assert stored.status != "blocked", (stored.status, stored.reason)
    await make_due(runtime, message["id"])
    await dispatcher.run_once()
    assert TO in [r for job in provider.sent for r in job.receivers if job.text == "Your booking"]


async def test_cancel_after_a_stop_during_the_attempt_is_not_a_conflict(
    http: httpx.AsyncClient,
    runtime: Runtime,
    dispatcher: Dispatcher,
    provider: ActsDuringSend,
) -> None:
    # A STOP came while the message was being sent; the client cancels it too.
    # It will not be sent (it ends blocked): the cancel is answered 202, not 409.
    shop = await make_client(runtime, "u", quota=Decimal(5))
    message = await send_message(http, shop.auth, to=TO, text="Your booking")
    answers: list[int] = []

    async def stop_then_cancel() -> None:
        await _reply(http, "STOP", "in-1")()
        response = await http.delete(f"/v1/messages/{message['id']}", headers=shop.auth)
        answers.append(response.status_code)

    provider.during = stop_then_cancel
    provider.fail_next = [TransientProviderError("503 from OVHcloud")]
    await dispatcher.run_once()
    assert answers == [202]


async def test_a_pending_cancel_is_not_shown_once_ovhcloud_took_the_message(
    http: httpx.AsyncClient,
    runtime: Runtime,
    dispatcher: Dispatcher,
    provider: ActsDuringSend,
) -> None:
    # The cancel came during the send and OVHcloud took the SMS: it runs its
    # course (submitted), and shows no settlement pending any more.
    shop = await make_client(runtime, "u", quota=Decimal(5))
    message = await send_message(http, shop.auth, to=TO, text="Your booking")
    answers: list[int] = []

    async def cancel() -> None:
        response = await http.delete(f"/v1/messages/{message['id']}", headers=shop.auth)
        answers.append(response.status_code)

    provider.during = cancel
    await dispatcher.run_once()
    assert answers == [202]
    shown = (await http.get(f"/v1/messages/{message['id']}", headers=shop.auth)).json()
    assert shown["status"] == "submitted"
    assert shown["settle_to"] is None
