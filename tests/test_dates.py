"""Every date a client sends is bounded: a 422 naming the field, never a 500, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from smsgateway.models.campaigns import Campaign
from smsgateway.models.messages import Message
from smsgateway.runtime import Runtime
from tests.conftest import booking_event

# Each is a valid ISO 8601 time that no sane schedule holds; the first two leave
# the years datetime can hold once turned into UTC.
OUT_OF_RANGE = [
    "9999-12-31T23:00:00-14:00",
    "0001-01-01T01:00:00+14:00",
    "2150-06-01T10:00:00+00:00",
    "1999-12-31T23:59:59+00:00",
]
CSV = "number\n+33612345678\n"


def _assert_names(response: httpx.Response, field: str) -> None:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert field in [error["field"] for error in response.json()["errors"]]


async def _stored(runtime: Runtime) -> tuple[int, int]:
    async with runtime.sessionmaker() as session:
        messages = await session.scalar(select(func.count()).select_from(Message))
        campaigns = await session.scalar(select(func.count()).select_from(Campaign))
    return int(messages or 0), int(campaigns or 0)


@pytest.mark.parametrize("moment", OUT_OF_RANGE)
async def test_direct_send_at_out_of_range(
    http: httpx.AsyncClient, auth: dict[str, str], runtime: Runtime, moment: str
) -> None:
    body = {"to": "+33612345678", "text": "Hello", "send_at": moment}
    _assert_names(await http.post("/v1/messages", json=body, headers=auth), "body.send_at")
    assert await _stored(runtime) == (0, 0)


@pytest.mark.parametrize("moment", OUT_OF_RANGE)
@pytest.mark.parametrize("where", ["send_at", "booking.starts_at", "booking.expires_at"])
async def test_booking_event_dates_out_of_range(
    http: httpx.AsyncClient, auth: dict[str, str], runtime: Runtime, moment: str, where: str
) -> None:
    event: dict[str, Any] = booking_event()
    if where == "send_at":
        event["send_at"] = moment
    else:
        event["booking"][where.split(".")[1]] = moment
    response = await http.post("/v1/booking-events", json=event, headers=auth)
    _assert_names(response, f"body.{where}")
    assert await _stored(runtime) == (0, 0)


@pytest.mark.parametrize("moment", OUT_OF_RANGE)
async def test_campaign_send_at_out_of_range_json_and_upload(
    http: httpx.AsyncClient, auth: dict[str, str], runtime: Runtime, moment: str
) -> None:
    body = {"name": "Sale", "text": "-20% today", "csv": CSV, "send_at": moment}
    _assert_names(await http.post("/v1/campaigns", json=body, headers=auth), "body.send_at")
    form = {"name": "Sale", "text": "-20% today", "send_at": moment}
    files = {"file": ("c.csv", CSV.encode(), "text/csv")}
    response = await http.post("/v1/campaigns", data=form, files=files, headers=auth)
    assert response.status_code == 422, response.text
    assert "send_at" in " ".join(error["field"] for error in response.json()["errors"])
    assert await _stored(runtime) == (0, 0)


@pytest.mark.parametrize("path", ["/v1/messages", "/v1/booking-events", "/v1/campaigns"])
async def test_send_at_beyond_the_schedule_limit(
    http: httpx.AsyncClient, auth: dict[str, str], runtime: Runtime, path: str
) -> None:
    runtime.settings.dispatch.max_schedule_days = 366
    late = (datetime.now(UTC) + timedelta(days=367)).isoformat()
    soon = (datetime.now(UTC) + timedelta(days=365)).isoformat()
    bodies = {
        "/v1/messages": lambda at: {"to": "+33612345678", "text": "Hi", "send_at": at},
        "/v1/booking-events": lambda at: booking_event(send_at=at),
        "/v1/campaigns": lambda at: {"name": "S", "text": "Sale", "csv": CSV, "send_at": at},
    }
    response = await http.post(path, json=bodies[path](late), headers=auth)
    _assert_names(response, "body.send_at")
    assert "366 days" in response.json()["detail"]
    assert await _stored(runtime) == (0, 0)
    accepted = await http.post(path, json=bodies[path](soon), headers=auth)
    assert accepted.status_code == 202, accepted.text
