"""GET /v1/account: credits, and usage per UTC day and per tag over a date range."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import event, update

from smsgateway.credits.refunds import refund
from smsgateway.models.clients import ApiClient
from smsgateway.models.messages import Message
from smsgateway.runtime import Runtime
from tests.conftest import booking_event
from tests.factories import make_client

LONG_TEXT = "x" * 200  # two GSM-7 parts: two credits


async def _send(http: httpx.AsyncClient, auth: dict[str, str], **body: Any) -> str:
    response = await http.post(
        "/v1/messages", json={"to": "+33611223344", "text": "Hello", **body}, headers=auth
    )
    assert response.status_code == 202, response.text
    message_id: str = response.json()["id"]
    return message_id


async def _created_at(runtime: Runtime, when: str, *message_ids: str) -> None:
    moment = datetime.fromisoformat(when).replace(tzinfo=UTC)
    async with runtime.sessionmaker() as session, session.begin():
        await session.execute(
            update(Message).where(Message.id.in_(message_ids)).values(created_at=moment)
        )


@pytest.fixture
def far_from_utc(runtime: Runtime) -> None:
    """PostgreSQL sessions in a zone far from UTC: days must still be UTC days."""
    if not runtime.is_postgres:
        return

    def _zone(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("SET TIME ZONE 'Pacific/Kiritimati'")  # UTC+14
        cursor.close()

    event.listen(runtime.engine.sync_engine, "connect", _zone)


@pytest.mark.usefixtures("far_from_utc")
async def test_usage_per_day_and_per_tag(http: httpx.AsyncClient, runtime: Runtime) -> None:
    shop = await make_client(runtime, quota=100, alert_threshold=10)
    promo_short = await _send(http, shop.auth, tag="promo")
    promo_long = await _send(http, shop.auth, tag="promo", text=LONG_TEXT)
    otp = await _send(http, shop.auth, tag="otp")
    rejected = await _send(http, shop.auth, tag="otp", to="+33 1")
    cancelled = await _send(http, shop.auth, tag="otp")
    assert (await http.delete(f"/v1/messages/{cancelled}", headers=shop.auth)).status_code == 200
    booked = await http.post("/v1/booking-events", json=booking_event(), headers=shop.auth)
    not_billed = booked.json()["messages"][0]["id"]
    async with runtime.sessionmaker() as session, session.begin():
        assert await refund(session, not_billed, "not billed")
    too_early = await _send(http, shop.auth, tag="promo")

    await _created_at(runtime, "2026-03-01T00:00:00", promo_short)
    await _created_at(runtime, "2026-03-01T23:59:59.999", promo_long)
    await _created_at(runtime, "2026-03-02T00:00:00", otp, rejected, cancelled, not_billed)
    await _created_at(runtime, "2026-02-28T23:59:59", too_early)
    # Another client's messages never count.
    other = (await make_client(runtime, "other", quota=100, alert_threshold=10)).auth
    await _created_at(runtime, "2026-03-01T12:00:00", await _send(http, other, tag="promo"))

    response = await http.get(
        "/v1/account", params={"from": "2026-03-01", "to": "2026-03-02"}, headers=shop.auth
    )
    assert response.status_code == 200, response.text
    account = response.json()
    async with runtime.sessionmaker() as session:
        stored = await session.get(ApiClient, shop.id)
    assert stored is not None and stored.balance is not None
    assert account["id"] == shop.id and account["name"] == "shop"
    assert account["quota"] == 100
    assert account["credits_left"] == float(stored.balance)
    assert account["alert_threshold"] == 10
    assert account["usage"] == {
        "from": "2026-03-01",
        "to": "2026-03-02",
        "totals": {"messages": 4, "credits": 4},
        "by_day": [
            {"date": "2026-03-01", "messages": 2, "credits": 3},
            {"date": "2026-03-02", "messages": 2, "credits": 1},
        ],
        "by_tag": [
            {"tag": "promo", "messages": 2, "credits": 3},
            {"tag": "otp", "messages": 1, "credits": 1},
            {"tag": None, "messages": 1, "credits": 0},
        ],
    }

    one_day = await http.get(
        "/v1/account", params={"from": "2026-02-28", "to": "2026-02-28"}, headers=shop.auth
    )
    assert one_day.json()["usage"]["by_day"] == [
        {"date": "2026-02-28", "messages": 1, "credits": 1}
    ]


async def test_default_range_is_the_last_30_days(http: httpx.AsyncClient, runtime: Runtime) -> None:
    shop = await make_client(runtime, quota=100, alert_threshold=10)
    await _send(http, shop.auth)
    old = await _send(http, shop.auth)
    await _created_at(runtime, "2020-01-01T12:00:00", old)
    usage = (await http.get("/v1/account", headers=shop.auth)).json()["usage"]
    today = datetime.now(UTC).date()
    assert usage["to"] == today.isoformat()
    assert (today - datetime.fromisoformat(usage["from"]).date()).days == 29
    assert usage["totals"] == {"messages": 1, "credits": 1}
    assert usage["by_tag"] == [{"tag": None, "messages": 1, "credits": 1}]


async def test_unlimited_client(
    http: httpx.AsyncClient, runtime: Runtime, auth: dict[str, str]
) -> None:
    account = (await http.get("/v1/account", headers=auth)).json()
    assert account["quota"] is None and account["credits_left"] is None
    assert account["alert_threshold"] is None
    assert account["usage"]["totals"] == {"messages": 0, "credits": 0}
    assert account["usage"]["by_day"] == [] and account["usage"]["by_tag"] == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "2026-03-02", "to": "2026-03-01"}, "query.from"),
        ({"from": "2025-01-01", "to": "2026-01-02"}, "query.from"),
        ({"from": "yesterday"}, "query.from"),
        ({"to": "2026-02-30"}, "query.to"),
    ],
)
async def test_bad_ranges_are_422(
    http: httpx.AsyncClient, auth: dict[str, str], params: dict[str, str], field: str
) -> None:
    response = await http.get("/v1/account", params=params, headers=auth)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert field in [e["field"] for e in response.json()["errors"]]


async def test_a_full_leap_year_range_is_fine(
    http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    response = await http.get(
        "/v1/account", params={"from": "2024-01-01", "to": "2024-12-31"}, headers=auth
    )
    assert response.status_code == 200


async def test_needs_an_api_key(http: httpx.AsyncClient) -> None:
    assert (await http.get("/v1/account")).status_code == 401
