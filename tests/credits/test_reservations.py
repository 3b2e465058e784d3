"""Reservations: credits taken when messages are accepted, never overspent."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import httpx
import pytest
from sqlalchemy import select

from smsgateway.credits.reservations import commit_reserved, reserve
from smsgateway.errors import Problem
from smsgateway.messages.recipients import Recipient
from smsgateway.messages.service import build_message
from smsgateway.models.clients import CreditEntry
from smsgateway.models.messages import Message
from smsgateway.runtime import Runtime
from tests.conftest import booking_event
from tests.credits.helpers import balance_and_ledger, client_with, count_rows


async def test_accepting_messages_reserves_their_credits(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    client_id, auth = await client_with(runtime, "10")
    response = await http.post(
        "/v1/booking-events", json=booking_event("booking.expired"), headers=auth
    )
    assert response.status_code == 202
    assert sum(m["credits"] for m in response.json()["messages"]) == 2
    balance, ledger = await balance_and_ledger(runtime, client_id)
    assert balance == Decimal(8) == ledger


async def test_not_enough_credits_is_a_402_and_stores_nothing(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    client_id, auth = await client_with(runtime, "1")
    response = await http.post(
        "/v1/booking-events", json=booking_event("booking.expired"), headers=auth
    )
    assert response.status_code == 402
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["credits_needed"] == 2
    assert problem["credits_left"] == 1
    assert "needs 2 credits and 1 are left" in problem["detail"]
    assert await count_rows(runtime, Message) == 0
    from smsgateway.models.events import BookingEvent

    assert await count_rows(runtime, BookingEvent) == 0
    assert await balance_and_ledger(runtime, client_id) == (Decimal(1), Decimal(1))
    # The same event id can be used again once credits are there.
    async with runtime.sessionmaker() as session, session.begin():
        from smsgateway.credits.ledger import adjust

        await adjust(session, client_id, Decimal(5), kind="adjust", reason="top-up")
    again = await http.post(
        "/v1/booking-events", json=booking_event("booking.expired"), headers=auth
    )
    assert again.status_code == 202


async def test_unlimited_clients_are_not_charged(http: httpx.AsyncClient, runtime: Runtime) -> None:
    client_id, auth = await client_with(runtime, None)
    response = await http.post("/v1/booking-events", json=booking_event(), headers=auth)
    assert response.status_code == 202
    assert await balance_and_ledger(runtime, client_id) == (None, Decimal(0))


async def test_fifty_concurrent_requests_never_overspend(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    client_id, auth = await client_with(runtime, "20")
    responses = await asyncio.gather(
        *(
            http.post("/v1/booking-events", json=booking_event(event_id=f"evt-{i}"), headers=auth)
            for i in range(50)
        )
    )
    codes = sorted(r.status_code for r in responses)
    assert codes.count(202) == 20
    assert codes.count(402) == 30
    balance, ledger = await balance_and_ledger(runtime, client_id)
    assert balance == Decimal(0) == ledger
    assert await count_rows(runtime, Message) == 20
    assert await count_rows(runtime, CreditEntry, kind="reserve") == 20


async def test_two_reservations_that_each_fit_but_not_together_commit_one(
    runtime: Runtime, is_postgres: bool
) -> None:
    """Both read a balance that covers them; the second to commit is refused whole.

    On PostgreSQL the debit runs at commit; on SQLite the second waits for the
    first's write lock and then sees the balance it left.
    """
    client_id, _ = await client_with(runtime, "1")
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
    assert await balance_and_ledger(runtime, client_id) == (Decimal(0), Decimal(0))
    assert await count_rows(runtime, Message) == 1
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
