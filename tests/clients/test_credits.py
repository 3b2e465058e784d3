"""Credits: reserved on acceptance, never overspent, refunded once when never billed."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import httpx
import pytest
from sqlalchemy import func, select

from smsgateway.clients.credits import commit_reserved, ledger_sum, refund, reserve
from smsgateway.clients.service import create_client
from smsgateway.errors import Problem
from smsgateway.messages.dispatcher import Dispatcher
from smsgateway.messages.recipients import Recipient
from smsgateway.messages.service import build_message
from smsgateway.models.clients import ApiClient, CreditEntry
from smsgateway.models.messages import Message
from smsgateway.models.webhooks import WebhookDelivery
from smsgateway.providers.base import PermanentProviderError
from smsgateway.providers.fake import FakeProvider
from smsgateway.runtime import Runtime
from tests.conftest import CALLBACK_TOKEN, booking_event


async def _client(
    runtime: Runtime, quota: str | None, threshold: str | None = None, name: str = "shop"
) -> tuple[str, dict[str, str]]:
    async with runtime.sessionmaker() as session, session.begin():
        created = await create_client(
            session,
            name=name,
            quota=Decimal(quota) if quota is not None else None,
            alert_threshold=Decimal(threshold) if threshold is not None else None,
            webhook_url="https://marketplace.test/hooks",
        )
    return created.client.id, {"Authorization": f"Bearer {created.api_key}"}


async def _balance(runtime: Runtime, client_id: str) -> tuple[Decimal | None, Decimal]:
    async with runtime.sessionmaker() as session:
        client = await session.get(ApiClient, client_id)
        assert client is not None
        return client.balance, await ledger_sum(session, client_id)


async def _count(runtime: Runtime, model: type, **where: object) -> int:
    async with runtime.sessionmaker() as session:
        query = select(func.count()).select_from(model)
        for column, value in where.items():
            query = query.where(getattr(model, column) == value)
        return int(await session.scalar(query) or 0)


async def test_accepting_messages_reserves_their_credits(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    client_id, auth = await _client(runtime, "10")
    response = await http.post(
        "/v1/booking-events", json=booking_event("booking.expired"), headers=auth
    )
    assert response.status_code == 202
    assert sum(m["credits"] for m in response.json()["messages"]) == 2
    balance, ledger = await _balance(runtime, client_id)
    assert balance == Decimal(8) == ledger


async def test_not_enough_credits_is_a_402_and_stores_nothing(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    client_id, auth = await _client(runtime, "1")
    response = await http.post(
        "/v1/booking-events", json=booking_event("booking.expired"), headers=auth
    )
    assert response.status_code == 402
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["credits_needed"] == 2
    assert problem["credits_left"] == 1
    assert "needs 2 credits and 1 are left" in problem["detail"]
    assert await _count(runtime, Message) == 0
    from smsgateway.models.events import BookingEvent

    assert await _count(runtime, BookingEvent) == 0
    assert await _balance(runtime, client_id) == (Decimal(1), Decimal(1))
    # The same event id can be used again once credits are there.
    async with runtime.sessionmaker() as session, session.begin():
        from smsgateway.clients.credits import adjust

        await adjust(session, client_id, Decimal(5), kind="adjust", reason="top-up")
    again = await http.post(
        "/v1/booking-events", json=booking_event("booking.expired"), headers=auth
    )
    assert again.status_code == 202


async def test_unlimited_clients_are_not_charged(http: httpx.AsyncClient, runtime: Runtime) -> None:
    client_id, auth = await _client(runtime, None)
    response = await http.post("/v1/booking-events", json=booking_event(), headers=auth)
    assert response.status_code == 202
    assert await _balance(runtime, client_id) == (None, Decimal(0))


async def test_fifty_concurrent_requests_never_overspend(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    client_id, auth = await _client(runtime, "20")
    responses = await asyncio.gather(
        *(
            http.post("/v1/booking-events", json=booking_event(event_id=f"evt-{i}"), headers=auth)
            for i in range(50)
        )
    )
    codes = sorted(r.status_code for r in responses)
    assert codes.count(202) == 20
    assert codes.count(402) == 30
    balance, ledger = await _balance(runtime, client_id)
    assert balance == Decimal(0) == ledger
    assert await _count(runtime, Message) == 20
    assert await _count(runtime, CreditEntry, kind="reserve") == 20


async def test_two_reservations_that_each_fit_but_not_together_commit_one(
    runtime: Runtime, is_postgres: bool
) -> None:
    """Both read a balance that covers them; the second to commit is refused whole.

    On PostgreSQL the debit runs at commit; on SQLite the second waits for the
    first's write lock and then sees the balance it left.
    """
    client_id, _ = await _client(runtime, "1")
    first, second = runtime.sessionmaker(), runtime.sessionmaker()
    try:
        one = _message(runtime, client_id)
        first.add(one)
        await reserve(first, client_id, [one])
        if is_postgres:
            two = _message(runtime, client_id)
            second.add(two)
            await reserve(second, client_id, [two])  # the balance it reads still says 1
        await commit_reserved(first, client_id)
        if is_postgres:
            with pytest.raises(Problem) as refused:
                await commit_reserved(second, client_id)
            assert refused.value.status == 402
            assert refused.value.extra["credits_left"] == 0
        else:
            two = _message(runtime, client_id)
            second.add(two)
            with pytest.raises(Problem) as refused:
                await reserve(second, client_id, [two])
            assert refused.value.status == 402
    finally:
        await first.close()
        await second.close()
    assert await _balance(runtime, client_id) == (Decimal(0), Decimal(0))
    assert await _count(runtime, Message) == 1
    async with runtime.sessionmaker() as session:
        entries = (await session.scalars(select(CreditEntry).order_by(CreditEntry.id))).all()
    # The opening grant, then the one reservation, with the balance it left.
    assert [(e.kind, e.delta, e.balance_after) for e in entries] == [
        ("grant", Decimal(1), Decimal(1)),
        ("reserve", Decimal(-1), Decimal(0)),
    ]


def _message(runtime: Runtime, client_id: str) -> Message:
    recipient = Recipient(to="+33611223344", country="FR", language=None, refusal=None)
    return build_message(runtime, client_id=client_id, recipient=recipient, text="Hello")


async def test_cancel_refunds_once(http: httpx.AsyncClient, runtime: Runtime) -> None:
    client_id, auth = await _client(runtime, "5")
    response = await http.post(
        "/v1/messages", json={"to": "+33611223344", "text": "Hello"}, headers=auth
    )
    message_id = response.json()["id"]
    assert await _balance(runtime, client_id) == (Decimal(4), Decimal(4))
    cancelled = await http.delete(f"/v1/messages/{message_id}", headers=auth)
    assert cancelled.json()["status"] == "cancelled"
    again = await http.delete(f"/v1/messages/{message_id}", headers=auth)
    assert again.status_code == 409
    async with runtime.sessionmaker() as session, session.begin():
        assert await refund(session, message_id, "retry of a refund") is False
    assert await _balance(runtime, client_id) == (Decimal(5), Decimal(5))
    assert await _count(runtime, CreditEntry, kind="refund") == 1


async def test_permanent_failure_before_acceptance_refunds(
    http: httpx.AsyncClient, runtime: Runtime, provider: FakeProvider, dispatcher: Dispatcher
) -> None:
    client_id, auth = await _client(runtime, "5")
    provider.fail_next = [PermanentProviderError("OVH HTTP 400: bad sender")]
    await http.post("/v1/booking-events", json=booking_event(), headers=auth)
    await dispatcher.run_once()
    assert await _balance(runtime, client_id) == (Decimal(5), Decimal(5))


async def test_not_billed_delivery_report_refunds_once_even_when_repeated(
    http: httpx.AsyncClient, runtime: Runtime, dispatcher: Dispatcher
) -> None:
    client_id, auth = await _client(runtime, "5")
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
    assert await _balance(runtime, client_id) == (Decimal(5), Decimal(5))
    assert await _count(runtime, CreditEntry, kind="refund") == 1


async def test_delivered_messages_stay_billed(
    http: httpx.AsyncClient, runtime: Runtime, dispatcher: Dispatcher
) -> None:
    client_id, auth = await _client(runtime, "5")
    await http.post("/v1/booking-events", json=booking_event(), headers=auth)
    await dispatcher.run_once()
    await http.get(f"/v1/providers/ovh/{CALLBACK_TOKEN}/dlr", params={"id": "fake-1", "dlr": "1"})
    assert await _balance(runtime, client_id) == (Decimal(4), Decimal(4))


async def test_blocked_and_rejected_messages_cost_nothing(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    client_id, auth = await _client(runtime, "5")
    event = booking_event("booking.starting_soon")
    event["asker"]["phone"] = "+33 1"
    runtime.settings.verification.required = True
    response = await http.post("/v1/booking-events", json=event, headers=auth)
    statuses = sorted((m["status"], m["credits"]) for m in response.json()["messages"])
    assert statuses == [("blocked", 0), ("rejected", 0)]
    assert await _balance(runtime, client_id) == (Decimal(5), Decimal(5))


async def test_one_quota_low_alert_per_crossing(
    http: httpx.AsyncClient, runtime: Runtime, caplog: object
) -> None:
    client_id, auth = await _client(runtime, "5", threshold="3")
    for i in range(4):  # 5 -> 4 -> 3 -> 2 (crossing) -> 1
        await http.post("/v1/booking-events", json=booking_event(event_id=f"a-{i}"), headers=auth)
    assert await _count(runtime, WebhookDelivery, event_type="quota.low") == 1
    async with runtime.sessionmaker() as session:
        alert = await session.scalar(select(WebhookDelivery))
    assert alert is not None
    assert alert.payload["data"] == {"credits_left": 2.0, "alert_threshold": 3.0, "quota": 5.0}
    # A top-up above the threshold re-arms the alert; the next crossing alerts again.
    async with runtime.sessionmaker() as session, session.begin():
        from smsgateway.clients.credits import adjust

        await adjust(session, client_id, Decimal(4), kind="adjust", reason="top-up")
    for i in range(3):  # 5 -> 4 -> 3 -> 2 (crossing)
        await http.post("/v1/booking-events", json=booking_event(event_id=f"b-{i}"), headers=auth)
    assert await _count(runtime, WebhookDelivery, event_type="quota.low") == 2
    balance, ledger = await _balance(runtime, client_id)
    assert balance == ledger == Decimal(2)
