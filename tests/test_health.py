"""/healthz, /readyz, and what the API answers while the database is down."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from smsgateway.app import create_app
from smsgateway.config import Settings
from smsgateway.providers.fake import FakeProvider
from smsgateway.runtime import build_runtime
from tests.conftest import CALLBACK_TOKEN, booking_event


async def test_healthz_is_ok(http: httpx.AsyncClient) -> None:
    response = await http.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_is_ok_with_the_database_up(http: httpx.AsyncClient) -> None:
    response = await http.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "database": "ok",
        "provider_circuit": "closed",
        "stalled_loops": [],
    }


@pytest.fixture(params=["postgresql", "sqlite"])
def unreachable_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        # Nothing listens on port 1: the connection is refused at once.
        return "postgresql+asyncpg://postgres@127.0.0.1:1/none"
    return f"sqlite+aiosqlite:///{tmp_path / 'missing-directory' / 'smsgateway.db'}"


@pytest.fixture
async def down(unreachable_url: str, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app whose database cannot be reached."""
    broken = settings.model_copy(
        update={"database": settings.database.model_copy(update={"url": unreachable_url})}
    )
    provider = FakeProvider()
    runtime = build_runtime(broken, provider=provider)
    app = create_app(runtime=runtime)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                yield client
    finally:
        await runtime.aclose()
        # aiosqlite stops the thread of a failed connect without awaiting it: let it
        # finish while this test's event loop still runs.
        await asyncio.sleep(0.05)
    assert provider.sent == []


async def test_healthz_stays_ok_while_the_database_is_down(down: httpx.AsyncClient) -> None:
    assert (await down.get("/healthz")).status_code == 200


async def test_readyz_is_unavailable_while_the_database_is_down(down: httpx.AsyncClient) -> None:
    response = await down.get("/readyz")
    assert response.status_code == 503
    assert response.json()["status"] != "ok"


def _assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 503
    assert problem["type"].endswith("/database-unavailable")
    assert "Retry-After" in response.headers


async def test_a_booking_event_is_not_acknowledged_while_the_database_is_down(
    down: httpx.AsyncClient,
) -> None:
    response = await down.post(
        "/v1/booking-events",
        json=booking_event(),
        headers={"Authorization": "Bearer sgw_some-key"},
    )
    _assert_unavailable(response)
    assert "+336" not in response.text


async def test_reading_messages_is_unavailable_while_the_database_is_down(
    down: httpx.AsyncClient,
) -> None:
    response = await down.get("/v1/messages", headers={"Authorization": "Bearer sgw_some-key"})
    _assert_unavailable(response)


async def test_a_delivery_report_is_not_acknowledged_while_the_database_is_down(
    down: httpx.AsyncClient,
) -> None:
    # OVHcloud retries a callback that did not get a 2xx, so the report is not lost.
    response = await down.get(
        f"/v1/providers/ovh/{CALLBACK_TOKEN}/dlr", params={"id": "fake-1", "dlr": "1"}
    )
    _assert_unavailable(response)
    assert CALLBACK_TOKEN not in response.text
