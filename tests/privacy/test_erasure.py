"""POST /v1/erasures: a number erased from what one client holds, and only that client."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import httpx
from sqlalchemy import select, text

from smsgateway.db import utcnow
from smsgateway.messages.dispatcher import Dispatcher
from smsgateway.models.messages import Message
from smsgateway.models.phones import NumberState, UserPhone
from smsgateway.privacy.redaction import REDACTED
from smsgateway.runtime import Runtime
from tests.conftest import CALLBACK_TOKEN, booking_event
from tests.factories import make_client
from tests.helpers import balance, send_message

ANNA = "+33601020304"  # the example event's asker


async def test_a_number_is_erased_from_one_client_and_kept_for_the_other(
    http: httpx.AsyncClient, runtime: Runtime, dispatcher: Dispatcher
) -> None:
    shop = await make_client(runtime, "shop", quota=Decimal(50), webhook_url="https://h.test/h")
    other = await make_client(runtime, "other")
    registered = await http.put(
        "/v1/users/u-1/phone", json={"phone": ANNA, "method": "code"}, headers=shop.auth
    )
    assert registered.status_code == 201, registered.text
    event = booking_event("booking.accepted")
    assert (await http.post("/v1/booking-events", json=event, headers=shop.auth)).is_success
    await dispatcher.run_once()
    later = (utcnow() + timedelta(days=1)).isoformat()
    queued = await send_message(http, shop.auth, to=ANNA, text="Tomorrow", send_at=later)
    theirs = await send_message(http, other.auth, to=ANNA, text="Not yours")
    stop = await http.get(f"/v1/providers/ovh/{CALLBACK_TOKEN}/stop", params={"sender": ANNA})
    assert stop.status_code == 200
    before = await balance(runtime, shop.id)

    erased = await http.post("/v1/erasures", json={"phone": ANNA}, headers=shop.auth)

    assert erased.status_code == 200, erased.text
    body = erased.json()
    assert body["phone"] == "+336******04" and ANNA not in erased.text
    assert body["registrations_deleted"] == 1
    assert body["messages_redacted"] >= 3  # verification, booking SMS, the queued one
    assert body["webhooks_redacted"] >= 1
    assert body["events_redacted"] == 1
    async with runtime.sessionmaker() as session:
        mine = (await session.scalars(select(Message).where(Message.client_id == shop.id))).all()
        assert all(ANNA not in (m.to, m.text) for m in mine)
        assert await session.scalar(select(UserPhone).where(UserPhone.client_id == shop.id)) is None
        kept = await session.get(Message, theirs["id"])
        assert kept is not None and (kept.to, kept.text) == (ANNA, "Not yours")
        cancelled = await session.get(Message, queued["id"])
        assert cancelled is not None and cancelled.status in ("cancelled", "blocked")
        state = await session.get(NumberState, ANNA)
        assert state is not None and state.opted_out_at is not None  # STOP is kept
        for table, column in (("webhook_deliveries", "payload"), ("booking_events", "response")):
            rows = await session.execute(
                text(f"SELECT {column} FROM {table} WHERE client_id = :c"),  # noqa: S608
                {"c": shop.id},
            )
            assert all(ANNA not in str(row[0]) for row in rows)
    assert await balance(runtime, shop.id) >= before  # what was cancelled came back
    assert all(m.text == REDACTED or m.status == "cancelled" for m in mine)


async def test_a_malformed_number_is_a_422(http: httpx.AsyncClient, auth: dict[str, str]) -> None:
    refused = await http.post("/v1/erasures", json={"phone": "not a number"}, headers=auth)
    assert refused.status_code == 422
    assert refused.json()["type"].endswith("/invalid-phone")
