"""A cancel or a STOP that comes while a message is being sent wins over its retries.

A message OVHcloud did not take goes back to the queue after a failed attempt;
if it was cancelled, its number said STOP or was suspended meanwhile, it ends
there, refunded, and is never sent. One OVHcloud may have (an answer lost) is
looked up first: found, it runs its course; not found, it ends the same way.
A START after such a STOP lifts it, and a message OVHcloud took anyway shows
no settlement pending.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from decimal import Decimal

import httpx
import pytest

from smsgateway.messages.dispatcher import Dispatcher
from smsgateway.providers.base import JobResult, OutgoingJob, TransientProviderError
from smsgateway.providers.fake import FakeProvider
from smsgateway.runtime import Runtime
from tests.conftest import CALLBACK_TOKEN
from tests.factories import make_client
from tests.helpers import balance, make_due, send_message, stored_message

TO = "+33611223344"
INCOMING = f"/v1/providers/ovh/{CALLBACK_TOKEN}/incoming"


class ActsDuringSend(FakeProvider):
    """Runs ``during`` while a send is in flight, then fails it as told."""

    def __init__(self) -> None:
        super().__init__()
        self.during: Callable[[], Awaitable[None]] | None = None

    async def send(self, job: OutgoingJob) -> JobResult:
        if self.during is not None:
            during, self.during = self.during, None
            await during()
        return await super().send(job)


@pytest.fixture
def provider() -> FakeProvider:
    return ActsDuringSend()


def _stop(http: httpx.AsyncClient) -> Callable[[], Awaitable[None]]:
    async def stop() -> None:
        response = await http.get(f"/v1/providers/ovh/{CALLBACK_TOKEN}/stop", params={"sender": TO})
        assert response.status_code == 200, response.text

    return stop


def _cancel(
    http: httpx.AsyncClient, auth: dict[str, str], message_id: str, answers: list[int]
) -> Callable[[], Awaitable[None]]:
    async def cancel() -> None:
        response = await http.delete(f"/v1/messages/{message_id}", headers=auth)
        answers.append(response.status_code)

    return cancel


async def _sent_to(provider: FakeProvider) -> list[str]:
    return [receiver for job in provider.sent for receiver in job.receivers]


@pytest.mark.parametrize("way", ["stop", "cancel"])
async def test_a_message_failing_while_it_is_stopped_is_never_sent(
    http: httpx.AsyncClient,
    runtime: Runtime,
    dispatcher: Dispatcher,
    provider: ActsDuringSend,
    way: str,
) -> None:
    shop = await make_client(runtime, "u", quota=Decimal(5))
    auth, client_id = shop.auth, shop.id
    message = await send_message(http, auth, to=TO, text="Your booking")
    answers: list[int] = []
    provider.during = _stop(http) if way == "stop" else _cancel(http, auth, message["id"], answers)
    provider.fail_next = [TransientProviderError("503 from OVHcloud")]  # not taken
    await dispatcher.run_once()
    assert answers in ([], [202])  # the cancel came during the attempt: pending
    stored = await stored_message(runtime, message["id"])
    expected = ("blocked", "opted_out") if way == "stop" else ("cancelled", "cancelled")
    assert (stored.status, stored.reason) == expected
    await make_due(runtime)
    await dispatcher.run_once()
    assert TO not in await _sent_to(provider)
    assert await balance(runtime, client_id) == Decimal(5)


async def test_a_cancel_between_attempts_of_a_lost_send_waits_for_the_look_up(
    http: httpx.AsyncClient,
    runtime: Runtime,
    dispatcher: Dispatcher,
    provider: ActsDuringSend,
) -> None:
    shop = await make_client(runtime, "u", quota=Decimal(5))
    auth, client_id = shop.auth, shop.id
    message = await send_message(http, auth, to=TO, text="Your booking")
    # Lost on the way: OVHcloud never saw it, and we cannot know.
    provider.fail_next = [TransientProviderError("connection reset", uncertain=True)]
    await dispatcher.run_once()
    cancel = await http.delete(f"/v1/messages/{message['id']}", headers=auth)
    assert cancel.status_code == 202, cancel.text
    await make_due(runtime)
    await dispatcher.run_once()  # looked up, not found: it ends cancelled and refunded
    stored = await stored_message(runtime, message["id"])
    assert (stored.status, stored.reason) == ("cancelled", "cancelled")
    assert await _sent_to(provider) == []
    assert await balance(runtime, client_id) == Decimal(5)
    again = await http.delete(f"/v1/messages/{message['id']}", headers=auth)
    assert again.status_code == 409


# -- a settlement pending during an attempt, and what comes after it ------------


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
        await _cancel(http, shop.auth, message["id"], answers)()

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
    provider.during = _cancel(http, shop.auth, message["id"], answers)
    await dispatcher.run_once()
    assert answers == [202]
    shown = (await http.get(f"/v1/messages/{message['id']}", headers=shop.auth)).json()
    assert shown["status"] == "submitted"
    assert shown["settle_to"] is None
