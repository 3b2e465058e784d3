"""The low-credit alert: one ``quota.low`` per crossing, armed again above the threshold."""

from __future__ import annotations

from decimal import Decimal

import httpx
from sqlalchemy import select

from smsgateway.credits.holds import hold, release
from smsgateway.credits.ledger import adjust
from smsgateway.models.campaigns import Campaign
from smsgateway.models.clients import ApiClient, CreditEntry
from smsgateway.models.webhooks import WebhookDelivery
from smsgateway.runtime import Runtime
from tests.conftest import booking_event
from tests.credits.helpers import balance_and_ledger, client_with, count_rows


async def _alerted(runtime: Runtime, client_id: str) -> bool:
    async with runtime.sessionmaker() as session:
        client = await session.get(ApiClient, client_id)
        assert client is not None
        return client.low_credit_alerted


async def _quota_low(runtime: Runtime) -> int:
    return await count_rows(runtime, WebhookDelivery, event_type="quota.low")


async def test_one_quota_low_alert_per_crossing(
    http: httpx.AsyncClient, runtime: Runtime, caplog: object
) -> None:
    client_id, auth = await client_with(runtime, "5", threshold="3")
    for i in range(4):  # 5 -> 4 -> 3 -> 2 (crossing) -> 1
        await http.post("/v1/booking-events", json=booking_event(event_id=f"a-{i}"), headers=auth)
    assert await count_rows(runtime, WebhookDelivery, event_type="quota.low") == 1
    async with runtime.sessionmaker() as session:
        alert = await session.scalar(select(WebhookDelivery))
    assert alert is not None
    assert alert.payload["data"] == {"credits_left": 2.0, "alert_threshold": 3.0, "quota": 5.0}
    # A top-up above the threshold re-arms the alert; the next crossing alerts again.
    async with runtime.sessionmaker() as session, session.begin():
        await adjust(session, client_id, Decimal(4), kind="adjust", reason="top-up")
    for i in range(3):  # 5 -> 4 -> 3 -> 2 (crossing)
        await http.post("/v1/booking-events", json=booking_event(event_id=f"b-{i}"), headers=auth)
    assert await count_rows(runtime, WebhookDelivery, event_type="quota.low") == 2
    balance, ledger = await balance_and_ledger(runtime, client_id)
    assert balance == ledger == Decimal(2)


async def test_a_refund_back_to_the_threshold_rearms_the_alert(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    client_id, auth = await client_with(runtime, "3", threshold="3")
    sms = {"to": "+33611223344", "text": "Hello"}
    sent = (await http.post("/v1/messages", json=sms, headers=auth)).json()
    assert (await _quota_low(runtime), await _alerted(runtime, client_id)) == (1, True)
    await http.delete(f"/v1/messages/{sent['id']}", headers=auth)  # 2 -> 3: the threshold
    assert (await _quota_low(runtime), await _alerted(runtime, client_id)) == (1, False)
    await http.post("/v1/messages", json=sms, headers=auth)
    assert (await _quota_low(runtime), await _alerted(runtime, client_id)) == (2, True)


async def test_credits_that_stay_below_the_threshold_keep_the_alert_sent(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    client_id, auth = await client_with(runtime, "4", threshold="4")
    await http.post("/v1/booking-events", json=booking_event(), headers=auth)  # 4 -> 3
    async with runtime.sessionmaker() as session, session.begin():
        await adjust(session, client_id, Decimal("0.5"), kind="adjust", reason="a little")
    assert await _alerted(runtime, client_id) is True
    await http.post("/v1/booking-events", json=booking_event(event_id="b"), headers=auth)
    assert await _quota_low(runtime) == 1
    assert await balance_and_ledger(runtime, client_id) == (Decimal("2.5"), Decimal("2.5"))


async def test_a_campaign_hold_alerts_and_its_release_rearms(runtime: Runtime) -> None:
    client_id, _ = await client_with(runtime, "10", threshold="5")
    async with runtime.sessionmaker() as session, session.begin():
        assert await hold(session, client_id, "cmp-1", Decimal(6)) is True
    assert (await _quota_low(runtime), await _alerted(runtime, client_id)) == (1, True)
    campaign = Campaign(id="cmp-1", client_id=client_id, charged=True, credits_held=Decimal(6))
    async with runtime.sessionmaker() as session, session.begin():
        await release(session, campaign, "cancelled")
    assert campaign.credits_held == 0
    assert await _alerted(runtime, client_id) is False
    assert await balance_and_ledger(runtime, client_id) == (Decimal(10), Decimal(10))
    async with runtime.sessionmaker() as session:
        rows = (await session.scalars(select(CreditEntry).order_by(CreditEntry.id))).all()
    assert [(e.kind, e.delta, e.balance_after) for e in rows] == [
        ("grant", Decimal(10), Decimal(10)),
        ("reserve", Decimal(-6), Decimal(4)),
        ("refund", Decimal(6), Decimal(10)),
    ]
