"""Shared fixtures: a migrated database (SQLite or PostgreSQL), the app, a client.

The database is a SQLite file in a temporary directory, or, when
``SMSGW_TEST_DATABASE_URL`` names a PostgreSQL database, a new database on that
server made for this run. It is migrated once per run with Alembic, and every
table is emptied after each test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import make_url, text

from smsgateway.app import create_app
from smsgateway.config import (
    ApiSettings,
    DatabaseSettings,
    DeliveryReportSettings,
    DispatchSettings,
    ProviderSettings,
    ReminderSettings,
    Settings,
    VerificationSettings,
    WebhookSettings,
    WorkerSettings,
)
from smsgateway.messages.dispatcher import Dispatcher
from smsgateway.migrate import upgrade
from smsgateway.models import Base
from smsgateway.providers.fake import FakeProvider
from smsgateway.runtime import Runtime, build_runtime
from tests.databases import own_postgres_database, postgres_server_url
from tests.factories import make_client

CALLBACK_TOKEN = "cb-token-for-tests-0123456789abcdef"
ADMIN_TOKEN = "admin-token-for-tests-0123456789abcdef"


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A freshly migrated database for this run.

    On PostgreSQL each run gets its own database (``<name>_<random>``) on the
    server of ``SMSGW_TEST_DATABASE_URL``, dropped at the end, so runs never
    see each other's rows.
    """
    server_url = postgres_server_url()
    if server_url is None:
        path: Path = tmp_path_factory.mktemp("db") / "test.db"
        url = f"sqlite+aiosqlite:///{path}"
        upgrade(url)
        yield url
        return
    with own_postgres_database(server_url, make_url(server_url).database or "test") as url:
        upgrade(url)
        yield url


@pytest.fixture
def is_postgres(database_url: str) -> bool:
    return database_url.startswith("postgresql")


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(
        database=DatabaseSettings(url=database_url),
        api=ApiSettings(
            callback_token=CALLBACK_TOKEN,  # type: ignore[arg-type]
            admin_token=ADMIN_TOKEN,  # type: ignore[arg-type]
            # Tests send wrong tokens on purpose; tests/test_guessing.py turns it on.
            auth_failures_per_minute=0,
        ),
        verification=VerificationSettings(required=False),
        dispatch=DispatchSettings(
            retry_base_seconds=0.01, retry_max_seconds=0.05, uncertain_settle_seconds=0
        ),
        worker=WorkerSettings(poll_seconds=0.05),
        reminders=ReminderSettings(
            # The example event's dates are near: automatic reminders would add messages
            # to most tests, depending on the day. tests/events/test_reminders.py turns them on.
            enabled=False,
        ),
        provider=ProviderSettings(calls_per_minute=0, listing_lag_seconds=0),
        delivery_reports=DeliveryReportSettings(check_interval_seconds=0),
        # Test receivers are on loopback or mocked names; tests/webhooks turn it off.
        webhooks=WebhookSettings(allow_private_networks=True),
    )


@pytest.fixture
def provider() -> FakeProvider:
    return FakeProvider()


@pytest.fixture
async def runtime(settings: Settings, provider: FakeProvider) -> AsyncIterator[Runtime]:
    current = build_runtime(settings, provider=provider)
    try:
        yield current
    finally:
        await _empty_tables(current)
        await current.aclose()


async def _empty_tables(runtime: Runtime) -> None:
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    async with runtime.engine.begin() as connection:
        if runtime.is_postgres:
            await connection.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                await connection.execute(text(f"DELETE FROM {table}"))  # noqa: S608


@pytest.fixture
async def http(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(runtime=runtime)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


@pytest.fixture
async def api_key(runtime: Runtime) -> str:
    """The key of "marketplace", a client with no quota: the caller most tests need."""
    return (await make_client(runtime, "marketplace")).api_key


@pytest.fixture
def auth(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}


@pytest.fixture
def dispatcher(runtime: Runtime) -> Dispatcher:
    return Dispatcher(runtime, worker_id="test-worker")


def booking_event(event_type: str = "booking.requested", **overrides: Any) -> dict[str, Any]:
    """The DESIGN example event, with any top-level field replaced."""
    body: dict[str, Any] = {
        "event_id": "evt-981",
        "type": event_type,
        "booking": {
            "id": "b-42",
            "title": "Kayak for two",
            "starts_at": "2026-12-01T09:00:00+01:00",
            "expires_at": "2026-11-22T09:00:00+01:00",
        },
        "asker": {
            "user_ref": "u-1",
            "name": "Anna Martin",
            "phone": "+33601020304",
            "language": "fr",
        },
        "offeror": {"user_ref": "u-2", "name": "Marc", "phone": "+33611223344", "language": "en"},
    }
    body.update(overrides)
    return body
