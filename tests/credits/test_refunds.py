"""Refunds: credits come back once for what is never billed, and only then."""

from __future__ import annotations

from decimal import Decimal

import httpx

from smsgateway.credits.refunds import refund
from smsgateway.messages.dispatcher import Dispatcher
from smsgateway.models.clients import CreditEntry
from smsgateway.providers.base import PermanentProviderError
from smsgateway.providers.fake import FakeProvider
from smsgateway.runtime import Runtime
from tests.conftest import CALLBACK_TOKEN, booking_event
from tests.credits.helpers import balance_and_ledger, client_with, count_rows


async def test_cancel_refunds_once(http: httpx.AsyncClient, runtime: Runtime) -> None:
    client_id, auth = await client_with(runtime, "5")
    response = await http.post(
        "/v1/messages", json={"to": "+33611223344", "text": "Hello"}, headers=auth
    )
    message_id = response.json()["id"]
    assert await balance_and_ledger(runtime, client_id) == (Decimal(4), Decimal(4))
    cancelled = await http.delete(f"/v1/messages/{message_id}", headers=auth)
    assert cancelled.json()["status"] == "cancelled"
    again = await http.delete(f"/v1/messages/{message_id}", headers=auth)
    assert again.status_code == 409
    async with runtime.sessionmaker() as session, session.begin():
        assert await refund(session, message_id, "retry of a refund") is False
    assert await balance_and_ledger(runtime, client_id) == (Decimal(5), Decimal(5))
    assert await count_rows(runtime, CreditEntry, kind="refund") == 1


async def test_permanent_failure_before_acceptance_refunds(
    http: httpx.AsyncClient, runtime: Runtime, provider: FakeProvider, dispatcher: Dispatcher
) -> None:
    client_id, auth = await client_with(runtime, "5")
    provider.fail_next = [PermanentProviderError("OVH HTTP 400: bad sender")]
    await http.post("/v1/booking-events", json=booking_event(), headers=auth)
    await dispatcher.run_once()
    assert await balance_and_ledger(runtime, client_id) == (Decimal(5), Decimal(5))


async def test_not_billed_delivery_report_refunds_once_even_when_repeated(
    http: httpx.AsyncClient, runtime: Runtime, dispatcher: Dispatcher
) -> None:
    client_id, auth = await client_with(runtime, "5")
    await http.post("/v1/booking-events", json=booking_event(), headers=auth)
    await dispatcher.run_once()
    url = f"/v1/providers/ovh/{CALLBACK_TOKEN}/dlr"
    for _ in range(3):
        report = await http.get(
            url, params={"id": "fake-1", "dlr": "16", "ptt": "23", "date": "2026-11-21 10:00:00"}
        )
        assert report.status_code == 200
    # A differently dated copy of the same outcome is a new report, still no second refund.
    await http.get(url, params={"id": "fake-1", "dlr": "16", "date": "2026-11-21 10:05:00"})
    assert await balance_and_ledger(runtime, client_id) == (Decimal(5), Decimal(5))
    assert await count_rows(runtime, CreditEntry, kind="refund") == 1


async def test_delivered_messages_stay_billed(
    http: httpx.AsyncClient, runtime: Runtime, dispatcher: Dispatcher
) -> None:
    client_id, auth = await client_with(runtime, "5")
    await http.post("/v1/booking-events", json=booking_event(), headers=auth)
    await dispatcher.run_once()
    await http.get(f"/v1/providers/ovh/{CALLBACK_TOKEN}/dlr", params={"id": "fake-1", "dlr": "1"})
    assert await balance_and_ledger(runtime, client_id) == (Decimal(4), Decimal(4))


async def test_blocked_and_rejected_messages_cost_nothing(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    client_id, auth = await client_with(runtime, "5")
    event = booking_event("booking.starting_soon")
    event["asker"]["phone"] = "+33 1"
    runtime.settings.verification.required = True
    response = await http.post("/v1/booking-events", json=event, headers=auth)
    statuses = sorted((m["status"], m["credits"]) for m in response.json()["messages"])
    assert statuses == [("blocked", 0), ("rejected", 0)]
    assert await balance_and_ledger(runtime, client_id) == (Decimal(5), Decimal(5))
