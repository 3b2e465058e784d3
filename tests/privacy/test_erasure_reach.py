"""what POST /v1/erasures leaves behind."""

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


async def test_erasure_removes_the_number_from_the_clients_campaign_summaries(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    """A campaign's stored summary lists sample messages (number and filled-in text)
    and skipped rows: GET /v1/campaigns/{id} still shows the erased number."""
    shop = await make_client(runtime, "shop", quota=Decimal(50))
    csv = f"number;firstname\n{MARC};Marc\n+33611223345;Lea\n"
    body = {"name": "Spring", "text": "Hi #FIRSTNAME#", "csv": csv, "quiet_hours": False}
    accepted = await http.post("/v1/campaigns", json=body, headers=shop.auth)
    assert accepted.status_code == 202, accepted.text
    assert MARC in accepted.text  # the set-up: the summary's sample holds the number

    erased = await http.post("/v1/erasures", json={"phone": MARC}, headers=shop.auth)
    assert erased.status_code == 200, erased.text

    shown = await http.get(f"/v1/campaigns/{accepted.json()['id']}", headers=shop.auth)
    assert shown.status_code == 200
    assert MARC not in shown.text
    assert "Hi Marc" not in shown.text


async def test_a_campaign_still_being_created_does_not_bring_the_erased_number_back(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    """The uploaded CSV waits in campaign_chunks until the worker makes its messages:
    an erasure in between leaves the number there, and the worker then stores (and
    sends) a new message to it."""
    from smsgateway.campaigns.worker import CampaignWorker

    shop = await make_client(runtime, "shop", quota=Decimal(50))
    csv = f"number;firstname\n{MARC};Marc\n+33611223345;Lea\n"
    body = {"name": "Spring", "text": "Hi #FIRSTNAME#", "csv": csv, "quiet_hours": False}
    accepted = await http.post("/v1/campaigns", json=body, headers=shop.auth)
    assert accepted.status_code == 202, accepted.text

    erased = await http.post("/v1/erasures", json={"phone": MARC}, headers=shop.auth)
    assert erased.status_code == 200, erased.text
    await CampaignWorker(runtime, worker_id="w").run_once()

    async with runtime.sessionmaker() as session:
        rows = (
            await session.execute(
                text("SELECT to_number FROM messages WHERE client_id = :c"), {"c": shop.id}
            )
        ).all()
        chunks = (await session.execute(text("SELECT data FROM campaign_chunks"))).all()
    assert rows, "the set-up: the worker made the campaign's messages"
    assert (MARC,) not in rows
    assert all(MARC.encode() not in bytes(chunk[0]) for chunk in chunks)
