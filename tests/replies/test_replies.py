"""Replies end to end: STOP/START, accepting or refusing a booking by SMS, push and poll."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from smsgateway.messages.dispatcher import Dispatcher
from smsgateway.models.callbacks import IncomingMessage
from smsgateway.models.events import BookingRequest
from smsgateway.models.phones import NumberState
from smsgateway.models.webhooks import WebhookDelivery
from smsgateway.providers.base import IncomingSms
from smsgateway.providers.fake import FakeProvider
from smsgateway.replies.poller import ReplyPoller
from smsgateway.runtime import Runtime
from tests.conftest import CALLBACK_TOKEN, booking_event
from tests.factories import make_client
from tests.helpers import balance, first_message

MARC = "+33611223344"  # the offeror of the example event
INCOMING = f"/v1/providers/ovh/{CALLBACK_TOKEN}/incoming"


@pytest.fixture
async def hooked(runtime: Runtime) -> dict[str, str]:
    """A client with a webhook URL, so webhook rows are written."""
    hooked = await make_client(runtime, "hooked", webhook_url="https://marketplace.test/hooks")
    return hooked.auth


async def _reply(http: httpx.AsyncClient, text: str, sms_id: str, sender: str = MARC) -> str:
    response = await http.post(INCOMING, data={"id": sms_id, "sender": sender, "message": text})
    assert response.status_code == 200, response.text
    status: str = response.json()["status"]
    return status


async def _webhooks(runtime: Runtime, event_type: str) -> list[dict[str, Any]]:
    async with runtime.sessionmaker() as session:
        rows = await session.scalars(
            select(WebhookDelivery)
            .where(WebhookDelivery.event_type == event_type)
            .order_by(WebhookDelivery.created_at)
        )
        return [row.payload["data"] for row in rows]


async def _request(
    http: httpx.AsyncClient, auth: dict[str, str], booking: str, title: str, event_id: str
) -> dict[str, Any]:
    event = booking_event("booking.requested", event_id=event_id)
    event["booking"]["id"] = booking
    event["booking"]["title"] = title
    event["booking"]["expires_at"] = "2099-01-01T00:00:00+00:00"
    return await first_message(http, auth, event)


async def test_a_single_open_request_is_accepted_by_yes(
    http: httpx.AsyncClient,
    hooked: dict[str, str],
    runtime: Runtime,
    dispatcher: Dispatcher,
    provider: FakeProvider,
) -> None:
    await _request(http, hooked, "b-1", "Kayak", "e-1")
    await dispatcher.run_once()
    assert provider.sent[0].text.endswith("Reply YES to accept or NO to refuse.")
    assert await _reply(http, "Yes!", "in-1") == "accepted"
    assert await _webhooks(runtime, "booking.reply") == [
        {
            "booking_id": "b-1",
            "decision": "accepted",
            "user_ref": "u-2",
            "text": "Yes!",
            "code": (await _codes(runtime))["b-1"],
        }
    ]
    # Answered: a second YES decides nothing more.
    assert await _reply(http, "yes", "in-2") == "expired_reply"
    assert len(await _webhooks(runtime, "booking.reply")) == 1


async def _codes(runtime: Runtime) -> dict[str, str]:
    async with runtime.sessionmaker() as session:
        rows = (await session.execute(select(BookingRequest.booking_id, BookingRequest.code))).all()
    return {booking: code for booking, code in rows}


async def test_several_open_requests_need_the_code(
    http: httpx.AsyncClient,
    hooked: dict[str, str],
    runtime: Runtime,
    dispatcher: Dispatcher,
    provider: FakeProvider,
) -> None:
    await _request(http, hooked, "b-1", "Kayak", "e-1")
    await _request(http, hooked, "b-2", "Canoe", "e-2")
    await dispatcher.run_once()
    codes = await _codes(runtime)
    assert codes["b-1"] != codes["b-2"]
    second = next(job.text for job in provider.sent if "Canoe" in job.text)
    assert f"Reply YES {codes['b-2']} to accept or NO {codes['b-2']} to refuse." in second
    sent_before = len(provider.sent)

    # A bare YES is ambiguous: one short SMS says how to answer; nothing is decided.
    assert await _reply(http, "YES", "in-1") == "ambiguous"
    await dispatcher.run_once()
    assert len(provider.sent) == sent_before + 1
    help_sms = provider.sent[-1]
    assert help_sms.receivers == [MARC]
    assert "followed by the code" in help_sms.text
    assert await _webhooks(runtime, "booking.reply") == []

    assert await _reply(http, f"non {codes['b-2'].lower()}", "in-2") == "refused"
    assert await _reply(http, f"OUI {codes['b-1']}", "in-3") == "accepted"
    decisions = {d["booking_id"]: d["decision"] for d in await _webhooks(runtime, "booking.reply")}
    assert decisions == {"b-2": "refused", "b-1": "accepted"}


async def test_expired_or_settled_requests_get_a_how_to_answer_sms(
    http: httpx.AsyncClient,
    hooked: dict[str, str],
    runtime: Runtime,
    dispatcher: Dispatcher,
    provider: FakeProvider,
) -> None:
    await _request(http, hooked, "b-1", "Kayak", "e-1")
    cancelled = booking_event("booking.cancelled", event_id="e-2")
    cancelled["booking"]["id"] = "b-1"
    await http.post("/v1/booking-events", json=cancelled, headers=hooked)
    await dispatcher.run_once()
    sent_before = len(provider.sent)
    assert await _reply(http, "YES", "in-1") == "expired_reply"
    await dispatcher.run_once()
    assert len(provider.sent) == sent_before + 1
    assert "no open booking request" in provider.sent[-1].text
    assert await _webhooks(runtime, "booking.reply") == []


async def test_stop_blocks_later_messages_and_confirms_once(
    http: httpx.AsyncClient,
    hooked: dict[str, str],
    runtime: Runtime,
    dispatcher: Dispatcher,
    provider: FakeProvider,
) -> None:
    await _request(http, hooked, "b-1", "Kayak", "e-1")
    await dispatcher.run_once()
    assert await _reply(http, "Stop", "in-1") == "opted_out"
    assert await _reply(http, "ARRÊT", "in-2") == "already_opted_out"
    await dispatcher.run_once()
    confirmations = [job for job in provider.sent if "no longer receive" in job.text]
    assert len(confirmations) == 1
    assert confirmations[0].receivers == [MARC]
    later = await _request(http, hooked, "b-2", "Canoe", "e-2")
    assert (later["status"], later["reason"]) == ("blocked", "opted_out")
    assert await _reply(http, "START", "in-3") == "opted_in"
    await dispatcher.run_once()
    assert "receive our SMS again" in provider.sent[-1].text
    again = await _request(http, hooked, "b-3", "Raft", "e-3")
    assert again["status"] == "queued"


async def test_stop_blocks_messages_already_queued_and_refunds_them(
    http: httpx.AsyncClient,
    runtime: Runtime,
) -> None:
    shop = await make_client(runtime, "budget", quota=10)
    waiting = await _request(http, shop.auth, "b-1", "Kayak", "e-1")
    assert waiting["status"] == "queued"
    # The number STOPs before the dispatcher took the message.
    await http.get(f"/v1/providers/ovh/{CALLBACK_TOKEN}/stop", params={"sender": MARC})
    message = (await http.get(f"/v1/messages/{waiting['id']}", headers=shop.auth)).json()
    assert (message["status"], message["reason"]) == ("blocked", "opted_out")
    assert await balance(runtime, shop.id) == Decimal(10)


async def test_provider_stop_callback_opts_out_without_confirmation(
    http: httpx.AsyncClient,
    auth: dict[str, str],
    runtime: Runtime,
    dispatcher: Dispatcher,
    provider: FakeProvider,
) -> None:
    response = await http.get(
        f"/v1/providers/ovh/{CALLBACK_TOKEN}/stop", params={"sender": "0033611223344"}
    )
    assert response.status_code == 200
    async with runtime.sessionmaker() as session:
        state = await session.get(NumberState, MARC)
    assert state is not None and state.opted_out_at is not None
    await dispatcher.run_once()
    assert provider.sent == []
    wrong = await http.get("/v1/providers/ovh/nope/stop", params={"sender": MARC})
    assert wrong.status_code == 404


async def test_polling_reads_each_reply_once_and_deletes_it(
    http: httpx.AsyncClient,
    hooked: dict[str, str],
    runtime: Runtime,
    provider: FakeProvider,
) -> None:
    await _request(http, hooked, "b-1", "Kayak", "e-1")
    provider.incoming = [
        IncomingSms(
            provider_id="901",
            sender="+33611223344",
            text="oui",
            received_at="2026-11-21T10:00:00+01:00",
        )
    ]
    # The same SMS also arrives by push: stored once, decided once.
    assert await _reply(http, "oui", "901") == "accepted"
    poller = ReplyPoller(runtime)
    assert await poller.poll_incoming() == 0
    assert provider.incoming == []
    async with runtime.sessionmaker() as session:
        stored = await session.scalar(select(func.count()).select_from(IncomingMessage))
    assert stored == 1
    assert len(await _webhooks(runtime, "booking.reply")) == 1


async def test_polling_handles_a_reply_that_was_not_pushed(
    http: httpx.AsyncClient,
    hooked: dict[str, str],
    runtime: Runtime,
    provider: FakeProvider,
) -> None:
    await _request(http, hooked, "b-1", "Kayak", "e-1")
    provider.incoming = [IncomingSms(provider_id="902", sender="0611223344", text="Non merci")]
    assert await ReplyPoller(runtime).poll_incoming() == 1
    assert [d["decision"] for d in await _webhooks(runtime, "booking.reply")] == ["refused"]


async def test_blacklist_sync_opts_numbers_out(runtime: Runtime, provider: FakeProvider) -> None:
    provider.blacklist = {"+33611223344", "not a number"}
    poller = ReplyPoller(runtime)
    assert await poller.sync_blacklist() == 1
    assert await poller.sync_blacklist() == 0


async def test_replies_from_unknown_numbers_are_stored_and_ignored(
    http: httpx.AsyncClient,
    runtime: Runtime,
    dispatcher: Dispatcher,
    provider: FakeProvider,
) -> None:
    assert await _reply(http, "YES", "in-1", sender="+33699887766") == "no_request"
    assert await _reply(http, "hello?", "in-2", sender="+33699887766") == "unknown_sender"
    duplicate = await http.post(
        INCOMING, data={"id": "in-2", "sender": "+33699887766", "message": "hello?"}
    )
    assert duplicate.json() == {"status": "duplicate", "duplicate": True}
    await dispatcher.run_once()
    assert provider.sent == []


async def test_malformed_incoming_push_is_a_problem(http: httpx.AsyncClient) -> None:
    response = await http.post(INCOMING, data={"message": "YES"})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert CALLBACK_TOKEN not in response.text


async def test_status_webhooks_follow_the_message(
    http: httpx.AsyncClient,
    hooked: dict[str, str],
    runtime: Runtime,
    dispatcher: Dispatcher,
) -> None:
    message = await _request(http, hooked, "b-1", "Kayak", "e-1")
    await dispatcher.run_once()
    await http.get(f"/v1/providers/ovh/{CALLBACK_TOKEN}/dlr", params={"id": "fake-1", "dlr": "1"})
    statuses = [(d["message_id"], d["status"]) for d in await _webhooks(runtime, "message.status")]
    assert statuses == [(message["id"], "submitted"), (message["id"], "delivered")]
    listed = await http.get("/v1/webhook-deliveries", params={"status": "pending"}, headers=hooked)
    assert listed.status_code == 200
    assert {item["event_type"] for item in listed.json()["items"]} == {"message.status"}


@pytest.mark.parametrize("way", ["push", "poll"])
async def test_register_then_yes_verifies_the_number(
    http: httpx.AsyncClient,
    hooked: dict[str, str],
    runtime: Runtime,
    dispatcher: Dispatcher,
    provider: FakeProvider,
    way: str,
) -> None:
    runtime.settings.verification.required = True
    registered = await http.put(
        "/v1/users/u-2/phone", json={"phone": MARC, "language": "en"}, headers=hooked
    )
    assert registered.status_code == 201, registered.text
    await dispatcher.run_once()
    assert len(provider.sent) == 1
    assert "YES" in provider.sent[0].text
    if way == "push":
        assert await _reply(http, "yes", "in-1") == "verified"
    else:
        provider.incoming = [IncomingSms(provider_id="in-1", sender=MARC, text="Oui")]
        assert await ReplyPoller(runtime).poll_incoming() == 1
    state = (await http.get("/v1/users/u-2/phone", headers=hooked)).json()
    assert state["status"] == "verified"
    assert await _webhooks(runtime, "phone.verified") == [
        {"user_ref": "u-2", "phone": MARC, "method": "reply"}
    ]
    # A booking SMS to the verified number now goes out.
    event = booking_event("booking.requested", event_id="e-9")
    del event["offeror"]["phone"]
    accepted = await http.post("/v1/booking-events", json=event, headers=hooked)
    assert accepted.json()["messages"][0]["status"] == "queued"


async def test_stop_and_start_reach_clients_that_registered_the_number(
    http: httpx.AsyncClient,
    hooked: dict[str, str],
    runtime: Runtime,
) -> None:
    await http.put("/v1/users/u-2/phone", json={"phone": MARC}, headers=hooked)
    assert await _reply(http, "STOP", "in-1") == "opted_out"
    state = (await http.get("/v1/users/u-2/phone", headers=hooked)).json()
    assert state["status"] == "opted_out"
    assert await _reply(http, "start", "in-2") == "opted_in"
    opted_out = await _webhooks(runtime, "phone.opted_out")
    opted_in = await _webhooks(runtime, "phone.opted_in")
    assert opted_out == [{"user_ref": "u-2", "phone": MARC, "source": "reply"}]
    assert opted_in == [{"user_ref": "u-2", "phone": MARC, "source": "reply"}]


async def test_start_is_not_undone_by_the_providers_old_blacklist(
    http: httpx.AsyncClient,
    hooked: dict[str, str],
    runtime: Runtime,
    provider: FakeProvider,
) -> None:
    await _request(http, hooked, "b-1", "Kayak", "e-1")
    provider.blacklist = {MARC}
    poller = ReplyPoller(runtime)
    assert await poller.sync_blacklist() == 1
    assert await _reply(http, "START", "in-1") == "opted_in"
    assert await poller.sync_blacklist() == 0
    assert provider.blacklist == set()  # taken off the provider's list
    async with runtime.sessionmaker() as session:
        state = await session.get(NumberState, MARC)
    assert state is not None and state.opted_out_at is None


async def test_nothing_but_the_stop_confirmation_reaches_an_opted_out_number(
    http: httpx.AsyncClient,
    hooked: dict[str, str],
    runtime: Runtime,
    dispatcher: Dispatcher,
    provider: FakeProvider,
) -> None:
    await _request(http, hooked, "b-1", "Kayak", "e-1")
    await dispatcher.run_once()
    assert await _reply(http, "STOP", "in-1") == "opted_out"
    assert await _reply(http, "NON", "in-2") == "refused"  # the decision still counts
    assert await _reply(http, "NON", "in-3") == "expired_reply"
    await dispatcher.run_once()
    after_stop = [job.text for job in provider.sent[1:]]
    assert len(after_stop) == 1 and "no longer receive" in after_stop[0]


async def test_a_push_without_id_and_its_polled_copy_are_one_sms(
    http: httpx.AsyncClient,
    hooked: dict[str, str],
    runtime: Runtime,
    provider: FakeProvider,
) -> None:
    await _request(http, hooked, "b-1", "Kayak", "e-1")
    pushed = await http.get(INCOMING, params={"sender": MARC, "message": "oui"})
    assert pushed.json()["status"] == "accepted"
    provider.incoming = [IncomingSms(provider_id="7001", sender=MARC, text="oui")]
    assert await ReplyPoller(runtime).poll_incoming() == 1  # stored, then seen as a copy
    async with runtime.sessionmaker() as session:
        outcomes = sorted((await session.scalars(select(IncomingMessage.outcome))).all())
    assert outcomes == ["accepted", "duplicate"]
    assert len(await _webhooks(runtime, "booking.reply")) == 1
