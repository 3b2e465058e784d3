"""``GET /metrics``: the series ops alert on, with the values the database and calls give."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from sqlalchemy import func, select

from smsgateway.app import create_app
from smsgateway.config import Settings
from smsgateway.messages.dispatcher import Dispatcher
from smsgateway.models import ProviderState
from smsgateway.models.clients import ApiClient
from smsgateway.models.webhooks import WebhookDelivery
from smsgateway.observability.metrics import CONTENT_TYPE, serve_worker_metrics
from smsgateway.providers.base import OutgoingJob, TransientProviderError
from smsgateway.providers.fake import FakeProvider
from smsgateway.runtime import Runtime, build_runtime
from tests.conftest import ADMIN_TOKEN, CALLBACK_TOKEN, booking_event

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Every sample of a text exposition, keyed by name and sorted labels."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def scrape(http: httpx.AsyncClient) -> Samples:
    response = await http.get("/metrics", headers=ADMIN)
    assert response.status_code == 200
    assert response.headers["content-type"] == CONTENT_TYPE
    assert CALLBACK_TOKEN not in response.text
    return parse(response.text)


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


async def test_metrics_follow_messages_from_event_to_delivery_report(
    observed: Runtime,
    provider: FakeProvider,
    http: httpx.AsyncClient,
    shop_auth: dict[str, str],
) -> None:
    # Three messages due now (1 + 2 recipients) and one scheduled for later.
    for event in (
        booking_event(event_id="evt-1"),
        booking_event("booking.expired", event_id="evt-2"),
    ):
        assert (await http.post("/v1/booking-events", json=event, headers=shop_auth)).is_success
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    scheduled = await http.post(
        "/v1/messages",
        json={"to": "+33612345678", "text": "Later", "send_at": later},
        headers=shop_auth,
    )
    assert scheduled.status_code == 202, scheduled.text

    async with observed.sessionmaker() as session:
        shop_id = await session.scalar(select(ApiClient.id).where(ApiClient.name == "shop"))
    assert shop_id is not None
    listed = await http.get("/metrics", headers=ADMIN)
    assert 'client="shop"' not in listed.text  # tenants by id, never by name
    before = await scrape(http)
    assert value(before, "smsgw_messages", client=shop_id, status="queued") == 4
    assert value(before, "smsgw_queue_depth") == 3
    assert value(before, "smsgw_queue_scheduled") == 1
    assert value(before, "smsgw_messages_sending") == 0
    oldest = value(before, "smsgw_queue_oldest_due_age_seconds")
    assert oldest is not None and 0 <= oldest < 30
    assert value(before, "smsgw_client_credits_left", client=shop_id) == 96
    assert value(before, "smsgw_client_quota", client=shop_id) == 100
    assert value(before, "smsgw_client_alert_threshold", client=shop_id) == 10
    assert value(before, "smsgw_metrics_database_up") == 1
    assert value(before, "smsgw_provider_circuit_state", state="closed") == 1
    assert (
        value(
            before,
            "smsgw_http_requests_total",
            method="POST",
            route="/v1/booking-events",
            status="202",
        )
        == 2
    )

    # One send fails (503), the others go; the failed one goes on the next pass.
    provider.fail_next.append(TransientProviderError("OVH HTTP 503", status_code=503))
    dispatcher = Dispatcher(observed, worker_id="metrics-test")
    assert await dispatcher.run_once() == 3
    await asyncio.sleep(0.1)  # the retry's backoff (retry_base_seconds=0.01)
    assert await dispatcher.run_once() == 1

    # A delivery report for the first SMS, and a malformed one.
    dlr = f"/v1/providers/ovh/{CALLBACK_TOKEN}/dlr"
    first_id = provider.ids_by_tag[provider.sent[0].tag][0]
    assert (await http.get(dlr, params={"id": first_id, "dlr": "1", "ptt": "4"})).is_success
    assert (await http.get(dlr, params={"id": first_id})).status_code == 422

    after = await scrape(http)
    assert value(after, "smsgw_messages", client=shop_id, status="delivered") == 1
    assert value(after, "smsgw_messages", client=shop_id, status="submitted") == 2
    assert value(after, "smsgw_messages", client=shop_id, status="queued") == 1
    assert value(after, "smsgw_queue_depth") == 0
    assert value(after, "smsgw_queue_oldest_due_age_seconds") == 0
    sends_ok = "smsgw_provider_call_duration_seconds_count"
    assert value(after, sends_ok, operation="send", outcome="ok") == 3
    assert value(after, sends_ok, operation="send", outcome="transient") == 1
    assert (
        value(
            after,
            "smsgw_provider_errors_total",
            operation="send",
            kind="transient",
            status_code="503",
        )
        == 1
    )
    assert value(after, "smsgw_delivery_reports_received_total", result="accepted") == 1
    assert value(after, "smsgw_delivery_reports_received_total", result="rejected") == 1
    assert (
        value(
            after,
            "smsgw_http_requests_total",
            method="GET",
            route="/v1/providers/ovh/{token}/dlr",
            status="200",
        )
        == 1
    )
    async with observed.sessionmaker() as session:
        pending = await session.scalar(
            select(func.count()).where(WebhookDelivery.status == "pending")
        )
    assert pending  # one message.status per step: submitted three times, delivered once
    assert value(after, "smsgw_webhooks_pending", client=shop_id) == pending


async def test_circuit_breaker_state_of_this_process_and_as_workers_stored_it(
    observed: Runtime, http: httpx.AsyncClient
) -> None:
    # This process's breaker (a dispatcher runs here) is read at scrape time.
    setattr(observed, "breaker", SimpleNamespace(state="half_open"))  # noqa: B010
    # What the workers stored, for every process (an API without a dispatcher too).
    async with observed.sessionmaker() as session, session.begin():
        session.add(ProviderState(provider="ovh", circuit="open", failures=5))
    samples = await scrape(http)
    assert value(samples, "smsgw_provider_circuit_state", state="half_open") == 1
    assert value(samples, "smsgw_provider_circuit_state", state="closed") == 0
    assert value(samples, "smsgw_provider_circuit_state", state="open") == 0
    reported = "smsgw_provider_circuit_reported_state"
    assert value(samples, reported, provider="ovh", state="open") == 1
    assert value(samples, reported, provider="ovh", state="closed") == 0
    assert value(samples, "smsgw_provider_consecutive_failures", provider="ovh") == 5


async def test_database_gauges_are_cached_between_scrapes(
    settings: Settings, provider: FakeProvider, shop_auth: dict[str, str]
) -> None:
    runtime = build_runtime(
        settings.model_copy(
            update={"metrics": settings.metrics.model_copy(update={"cache_seconds": 60})}
        ),
        provider,
    )
    app = create_app(runtime=runtime)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
                first = await scrape(http)
                assert value(first, "smsgw_queue_depth") == 0
                posted = await http.post(
                    "/v1/booking-events", json=booking_event(), headers=shop_auth
                )
                assert posted.status_code == 202
                # Within the cache time the database is not asked again.
                assert value(await scrape(http), "smsgw_queue_depth") == 0
    finally:
        await runtime.aclose()


async def test_metrics_answer_while_the_database_is_down(
    settings: Settings, tmp_path: Path
) -> None:
    broken = settings.model_copy(
        update={
            "database": settings.database.model_copy(
                update={"url": f"sqlite+aiosqlite:///{tmp_path / 'missing' / 'x.db'}"}
            )
        }
    )
    runtime = build_runtime(broken, provider=FakeProvider())
    app = create_app(runtime=runtime)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
                samples = await scrape(http)
    finally:
        await runtime.aclose()
        await asyncio.sleep(0.05)  # let aiosqlite's failed connect thread finish
    assert value(samples, "smsgw_metrics_database_up") == 0
    assert value(samples, "smsgw_queue_depth") is None
    assert value(samples, "smsgw_provider_circuit_state", state="closed") == 1


async def test_worker_serves_its_own_metrics(observed: Runtime, provider: FakeProvider) -> None:
    provider.fail_next.append(TransientProviderError("read timeout", uncertain=True))
    job = OutgoingJob(text="Hello", receivers=["+33611223344"], tag="sgw0")
    with pytest.raises(TransientProviderError):
        await observed.provider.send(job)
    await observed.provider.send(job)
    server = serve_worker_metrics(observed, "127.0.0.1", 0)
    try:
        async with httpx.AsyncClient() as client:
            response = await client.get(f"http://127.0.0.1:{server.server_port}/metrics")
    finally:
        server.shutdown()
        server.server_close()
    samples = parse(response.text)
    assert response.status_code == 200
    count = "smsgw_provider_call_duration_seconds_count"
    assert value(samples, count, operation="send", outcome="ok") == 1
    assert value(samples, count, operation="send", outcome="transient") == 1
    errors = "smsgw_provider_errors_total"
    assert value(samples, errors, operation="send", kind="uncertain", status_code="none") == 1
    assert value(samples, "smsgw_provider_circuit_state", state="closed") == 1
    # No database gauges from workers: the API serves those once.
    assert value(samples, "smsgw_queue_depth") is None


async def test_metrics_need_the_metrics_token_or_the_admin_token(
    observed: Runtime, http: httpx.AsyncClient
) -> None:
    observed.settings.api.metrics_token = SecretStr("metrics-token-0123456789abcdef0123")
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic eDp5"}):
        refused = await http.get("/metrics", headers=headers)
        assert refused.status_code == 401, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        assert "smsgw_" not in refused.text
    metrics_auth = {"Authorization": "Bearer metrics-token-0123456789abcdef0123"}
    assert (await http.get("/metrics", headers=metrics_auth)).status_code == 200
    assert (await http.get("/metrics", headers=ADMIN)).status_code == 200
    # The metrics token opens nothing else.
    assert (await http.get("/v1/admin/clients", headers=metrics_auth)).status_code == 401
    observed.settings.api.metrics_token = None
    assert (await http.get("/metrics", headers=metrics_auth)).status_code == 401
