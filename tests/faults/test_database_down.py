"""PostgreSQL goes away and comes back: no 202 that cannot be kept, nothing lost.

A TCP proxy sits between the service and PostgreSQL. The API (in process) and a
worker (``run_workers``, every background loop of ``smsgateway worker``) reach the
database only through it. Some events are accepted and sent; more are accepted and
taken by the dispatcher, whose provider is slow; then the proxy is cut, listener and
open connections alike. While it is cut the API answers ``503`` problems (never a
``202``), ``/readyz`` is ``503`` and the worker waits. Once restored, requests pass
again at once (the pool pings its connections) and every message accepted before the
cut is sent, exactly once: the ones that were in flight are found by their tag.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import make_url, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from smsgateway.app import create_app
from smsgateway.config import (
    DatabaseSettings,
    DeliveryReportSettings,
    DispatchSettings,
    ProviderSettings,
    ReplySettings,
    Settings,
    VerificationSettings,
    WorkerSettings,
)
from smsgateway.errors import PROBLEM_JSON
from smsgateway.models import Base
from smsgateway.providers.fake import FakeProvider
from smsgateway.runtime import Runtime, build_runtime
from smsgateway.worker import run_workers
from tests.chaos.summary import record_summary
from tests.conftest import booking_event
from tests.factories import make_client
from tests.faults.tcp_proxy import TcpProxy

DEADLINE_S = 30.0


@pytest.fixture
def postgres_url(database_url: str) -> str:
    if not database_url.startswith("postgresql"):
        pytest.skip("cuts a TCP connection to PostgreSQL (SQLite is a file in the process)")
    return database_url


@pytest.fixture
async def proxy(postgres_url: str) -> AsyncIterator[TcpProxy]:
    url = make_url(postgres_url)
    current = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    await current.start()
    try:
        yield current
    finally:
        await current.close()


@pytest.fixture
async def direct(postgres_url: str) -> AsyncIterator[AsyncEngine]:
    """The test's own way to the database, around the proxy; empties it afterwards."""
    engine = create_async_engine(postgres_url)
    try:
        yield engine
    finally:
        tables = ", ".join(t.name for t in reversed(Base.metadata.sorted_tables))
        async with engine.begin() as connection:
            await connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        await engine.dispose()


@pytest.fixture
async def proxied_runtime(postgres_url: str, proxy: TcpProxy) -> AsyncIterator[Runtime]:
    url = make_url(postgres_url).set(host="127.0.0.1", port=proxy.port)
    settings = Settings(
        database=DatabaseSettings(url=url.render_as_string(hide_password=False)),
        verification=VerificationSettings(required=False),
        dispatch=DispatchSettings(
            retry_base_seconds=0.05, retry_max_seconds=0.2, uncertain_settle_seconds=0.5
        ),
        worker=WorkerSettings(poll_seconds=0.1, lease_seconds=2.0),
        replies=ReplySettings(incoming_poll_seconds=0, blacklist_sync_seconds=0),
        # FakeProvider lists an SMS at once: no listing lag to wait out.
        provider=ProviderSettings(calls_per_minute=0, listing_lag_seconds=0),
        delivery_reports=DeliveryReportSettings(check_interval_seconds=0),
    )
    runtime = build_runtime(settings, provider=FakeProvider())
    try:
        yield runtime
    finally:
        await runtime.aclose()


async def until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        await asyncio.sleep(0.05)


async def statuses(direct: AsyncEngine) -> Counter[str]:
    async with direct.connect() as connection:
        rows = await connection.execute(text("SELECT status, count(*) FROM messages GROUP BY 1"))
        return Counter({status: count for status, count in rows})


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.headers["retry-after"]
    assert response.json()["type"].endswith("/database-unavailable")


async def test_database_down_answers_503_and_loses_nothing(
    proxy: TcpProxy,
    direct: AsyncEngine,
    proxied_runtime: Runtime,
    caplog: pytest.LogCaptureFixture,
) -> None:
    runtime = proxied_runtime
    provider = runtime.provider
    assert isinstance(provider, FakeProvider)
    auth = (await make_client(runtime, "marketplace")).auth
    app = create_app(runtime=runtime)
    stop = asyncio.Event()
    accepted: list[str] = []

    async def post(http: httpx.AsyncClient, n: int) -> httpx.Response:
        response = await http.post(
            "/v1/booking-events",
            json=booking_event("booking.starting_soon", event_id=f"evt-down-{n}"),
            headers=auth,
        )
        if response.status_code == 202:
            accepted.extend(m["id"] for m in response.json()["messages"])
        return response

    caplog.set_level(logging.WARNING)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://test") as http,
    ):
        worker = asyncio.create_task(run_workers(runtime, stop))
        try:
            # Up: accepted and sent.
            for n in range(3):
                assert (await post(http, n)).status_code == 202
            await until(lambda: _count(direct, "submitted", 6), "the first events are submitted")

            # Accepted, and being sent by a slow provider when the database goes.
            provider.latency_seconds = 1.0
            for n in range(3, 6):
                assert (await post(http, n)).status_code == 202
            # One batch in flight, the rest still queued behind it.
            await until(lambda: _count(direct, "sending", 2), "the dispatcher holds some")
            await proxy.cut()
            cut_at = time.monotonic()

            refused = [await post(http, n) for n in range(6, 11)]
            for response in refused:
                assert_unavailable(response)
            ready = await http.get("/readyz")
            assert ready.status_code == 503, ready.text
            message = await http.get(f"/v1/messages/{accepted[0]}", headers=auth)
            assert_unavailable(message)
            await asyncio.sleep(2.5)  # the in-flight sends end; their outcome cannot be stored
            assert not worker.done(), "the worker must wait, not stop"
            down_for = time.monotonic() - cut_at

            # Back: the first request passes (the pool pings what it hands out).
            await proxy.restore()
            provider.latency_seconds = 0.0
            first_answers = [(await post(http, n)).status_code for n in range(11, 13)]
            assert first_answers[-1] == 202, first_answers
            assert first_answers.count(503) <= 1, first_answers
            assert (await http.get("/readyz")).status_code == 200
            await until(
                lambda: _count(direct, "submitted", len(accepted)),
                "everything accepted is submitted",
            )
        finally:
            stop.set()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(worker, 10)

    waiting = [r for r in caplog.records if "database unavailable" in r.getMessage()]
    assert waiting, "the worker says it is waiting for the database"
    assert worker.exception() is None

    # Exactly once: every accepted message has its own SMS, and no SMS went twice.
    sent_tags = Counter(job.tag for job in provider.sent for _ in job.receivers)
    twice = [tag for tag, n in sent_tags.items() if n > 1]
    stored = await _messages(direct)
    assert set(stored) == set(accepted), "nothing accepted is lost, nothing else is stored"
    assert all(row["status"] == "submitted" and row["provider_id"] for row in stored.values())
    tags = {row["provider_tag"] for row in stored.values()}
    assert not twice, f"sent twice: {twice}"
    assert tags <= set(sent_tags), "every message reached the provider"
    record_summary(
        f"database down: accepted={len(accepted)} refused_503={len(refused)} "
        f"sent={sum(sent_tags.values())} duplicates={len(twice)} "
        f"lost={len(set(accepted) - set(stored))} down_for={down_for:.1f}s "
        f"first_after_restore={first_answers}"
    )


async def _count(direct: AsyncEngine, status: str, expected: int) -> bool:
    return (await statuses(direct))[status] >= expected


async def _messages(direct: AsyncEngine) -> dict[str, dict[str, Any]]:
    async with direct.connect() as connection:
        rows = await connection.execute(
            text("SELECT id, status, provider_id, provider_tag FROM messages")
        )
        return {row.id: dict(row._mapping) for row in rows}


class _DriverError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(f"SQLSTATE {sqlstate}")
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    ("sqlstate", "status", "kind"),
    [
        ("53300", 503, "database-unavailable"),  # too many connections
        ("57P01", 503, "database-unavailable"),  # the server is shutting down
        ("57P03", 503, "database-unavailable"),  # the server is starting up
        ("08006", 503, "database-unavailable"),  # the connection failed
        ("40P01", 503, "transaction-conflict"),  # deadlock: rolled back, retry
        ("40001", 503, "transaction-conflict"),  # serialization failure
        ("XX000", 500, "internal-error"),  # anything else is ours
    ],
)
async def test_database_errors_are_answered_for_what_they_mean(
    runtime: Runtime, sqlstate: str, status: int, kind: str
) -> None:
    app = create_app(runtime=runtime)

    async def fails() -> None:
        raise DBAPIError("SELECT 1", {}, _DriverError(sqlstate))

    app.add_api_route("/_fails", fails)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        response = await http.get("/_fails")
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.json()["type"].endswith(f"/{kind}")
    if status == 503:
        assert response.headers["retry-after"]
