"""Attack: what POST /v1/erasures leaves behind."""

from __future__ import annotations

from decimal import Decimal

import httpx
from sqlalchemy import text

from smsgateway.runtime import Runtime
from tests.conftest import booking_event
from tests.factories import make_client

MARC = "+33611223344"  # the example event's offeror, asked to accept the booking


async def test_erasure_removes_the_number_from_the_clients_booking_requests(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    """booking_requests.number is the client's data too (and an open request keeps
    matching the person's replies after the erasure)."""
    shop = await make_client(runtime, "shop", quota=Decimal(50))
    event = booking_event("booking.requested")
    created = await http.post("/v1/booking-events", json=event, headers=shop.auth)
    assert created.is_success, created.text
    async with runtime.sessionmaker() as session:
        before = (await session.execute(text("SELECT number FROM booking_requests"))).all()
    assert (MARC,) in before  # the set-up made a request to the offeror

    erased = await http.post("/v1/erasures", json={"phone": MARC}, headers=shop.auth)
    assert erased.status_code == 200, erased.text

    async with runtime.sessionmaker() as session:
        rows = (
            await session.execute(
                text("SELECT number FROM booking_requests WHERE client_id = :c"), {"c": shop.id}
            )
        ).all()
    assert all(MARC not in row[0] for row in rows), rows
