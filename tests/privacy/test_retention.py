"""SMSGW_RETENTION_DAYS: old personal data is redacted, counts and credits stay."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal

import httpx
from sqlalchemy import func, select, update

from smsgateway.db import utcnow
from smsgateway.messages.dispatcher import Dispatcher
from smsgateway.models.callbacks import IncomingMessage
from smsgateway.models.clients import CreditEntry
from smsgateway.models.events import BookingEvent
from smsgateway.models.messages import Message
from smsgateway.models.webhooks import WebhookDelivery
from smsgateway.privacy.redaction import REDACTED
from smsgateway.privacy.retention import Retention
from smsgateway.runtime import Runtime
from tests.conftest import CALLBACK_TOKEN, booking_event
from tests.factories import make_client
from tests.helpers import balance, send_message

OLD = timedelta(days=91)


async def _age(runtime: Runtime, *models: type) -> None:
    async with runtime.sessionmaker() as session, session.begin():
        for model in models:
            await session.execute(update(model).values(created_at=utcnow() - OLD))


async def test_old_finished_data_is_redacted_and_nothing_else(
    http: httpx.AsyncClient, runtime: Runtime, dispatcher: Dispatcher
) -> None:
    runtime.settings.retention.days = 90
    shop = await make_client(runtime, "shop", quota=Decimal(50), webhook_url="https://h.test/h")
    event = await http.post("/v1/booking-events", json=booking_event(), headers=shop.auth)
    assert event.status_code == 202, event.text
    await dispatcher.run_once()
    for n in (1,):  # the booking SMS delivered: final
        report = await http.get(
            f"/v1/providers/ovh/{CALLBACK_TOKEN}/dlr", params={"id": f"fake-{n}", "dlr": "1"}
        )
        assert report.status_code == 200, report.text
    later = (utcnow() + timedelta(days=2)).isoformat()
    waiting = await send_message(http, shop.auth, to="+33612399999", text="Later", send_at=later)
    incoming = await http.post(
        f"/v1/providers/ovh/{CALLBACK_TOKEN}/incoming",
        data={"id": "77", "sender": "+33611223344", "message": "OUI K7"},
    )
    assert incoming.status_code == 200, incoming.text
    async with runtime.sessionmaker() as session, session.begin():
        await session.execute(update(WebhookDelivery).values(status="delivered"))
    await _age(runtime, Message, IncomingMessage, WebhookDelivery, BookingEvent)
    before_balance = await balance(runtime, shop.id)
    async with runtime.sessionmaker() as session:
        ledger = await session.scalar(select(func.count()).select_from(CreditEntry))

    redacted = await Retention(runtime).run_once()

    assert redacted > 0
    async with runtime.sessionmaker() as session:
        messages = (await session.scalars(select(Message))).all()
        replies = (await session.scalars(select(IncomingMessage))).all()
        hooks = (await session.scalars(select(WebhookDelivery))).all()
        events = (await session.scalars(select(BookingEvent))).all()
        assert await session.scalar(select(func.count()).select_from(CreditEntry)) == ledger
    sent = [m for m in messages if m.status == "delivered"]
    assert sent and all(m.text == REDACTED and "*" in m.to for m in sent)
    # Still to go (a scheduled send, the answer to the reply): kept whole.
    waiting_ones = [m for m in messages if m.status == "queued"]
    assert waiting["id"] in {m.id for m in waiting_ones}
    assert all(m.text != REDACTED and "*" not in m.to for m in waiting_ones)
    assert replies and all(r.text == REDACTED and "*" in r.sender for r in replies)
    assert hooks and all(h.payload.get("redacted") for h in hooks)
    for stored in events:
        tos = [m.get("to") for m in stored.response.get("messages", [])]
        assert tos and all("*" in (to or "*") for to in tos)
    assert await balance(runtime, shop.id) == before_balance
    # A second pass has nothing left to do on messages and replies.
    assert await Retention(runtime).run_once() < redacted


async def test_recent_data_is_kept_and_zero_days_turns_it_off(
    http: httpx.AsyncClient, runtime: Runtime, dispatcher: Dispatcher
) -> None:
    shop = await make_client(runtime, "shop")
    message = await send_message(http, shop.auth, to="+33612300000", text="Hello")
    await dispatcher.run_once()
    assert await Retention(runtime).run_once() == 0
    async with runtime.sessionmaker() as session:
        stored = await session.get(Message, message["id"])
    assert stored is not None and stored.text == "Hello"
    runtime.settings.retention.days = 0
    await Retention(runtime).run(asyncio.Event())  # returns at once: off
