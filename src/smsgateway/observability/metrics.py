"""Prometheus metrics: one registry per process, plus database gauges at scrape time.

Process-local (each API or worker process counts what it did itself; ``sum`` them):

======================================================  ===================================
``smsgw_http_requests_total{method,route,status}``      requests answered, by route template
``smsgw_http_request_duration_seconds{method,route}``   time to answer
``smsgw_provider_call_duration_seconds{operation,outcome}``  every provider call, timed
``smsgw_provider_errors_total{operation,kind,status_code}``  failed provider calls
``smsgw_delivery_reports_received_total{result}``       delivery-report callbacks received
``smsgw_provider_circuit_state{state}``                 1 for the breaker's current state
======================================================  ===================================

From the database (``gauges``; the same on every API replica, so take ``max``):
``smsgw_messages``, ``smsgw_queue_depth``, ``smsgw_queue_oldest_due_age_seconds``,
``smsgw_queue_scheduled``, ``smsgw_messages_sending``, ``smsgw_webhooks_pending``,
``smsgw_client_credits_left`` / ``_quota`` / ``_alert_threshold``,
``smsgw_provider_circuit_reported_state`` (what the workers last stored),
``smsgw_metrics_database_up``.

``smsgateway worker`` serves its process-local registry on ``SMSGW_WORKER_METRICS_PORT``
(see ``serve_worker_metrics``); the database gauges come from the API only.
"""

from __future__ import annotations

import hmac
import logging
import os
import time
from collections.abc import Iterable, Iterator
from datetime import timedelta
from typing import Annotated, Any, Protocol

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from smsgateway.config import Settings
from smsgateway.errors import Problem
from smsgateway.observability.gauges import DatabaseSnapshot, SnapshotCache
from smsgateway.workers.loop import running_loops

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
BREAKER_STATES = ("closed", "open", "half_open")
_PROVIDER_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class RuntimeView(Protocol):
    """What metrics read of ``smsgateway.runtime.Runtime`` (which owns a ``Metrics``).

    A protocol, not an import: the runtime builds the instruments, so observability
    stays below it. ``breaker`` is read with ``getattr`` (absent is ``closed``).
    """

    @property
    def settings(self) -> Settings: ...

    @property
    def sessionmaker(self) -> async_sessionmaker[AsyncSession]: ...

    @property
    def metrics(self) -> Metrics: ...


class Metrics:
    """The process-local instruments, in a registry of their own (one per ``Runtime``).

    Under ``PROMETHEUS_MULTIPROC_DIR`` (``smsgateway serve --workers N``) the values live
    in files shared by the worker processes and ``/metrics`` adds them all up.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.http_requests = Counter(
            "smsgw_http_requests",
            "HTTP requests answered, by route template and status code",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.http_duration = Histogram(
            "smsgw_http_request_duration_seconds",
            "Time to answer an HTTP request",
            ["method", "route"],
            buckets=_HTTP_BUCKETS,
            registry=self.registry,
        )
        self.provider_duration = Histogram(
            "smsgw_provider_call_duration_seconds",
            "Provider (OVHcloud) calls by operation and outcome (ok, transient, permanent, error)",
            ["operation", "outcome"],
            buckets=_PROVIDER_BUCKETS,
            registry=self.registry,
        )
        self.provider_errors = Counter(
            "smsgw_provider_errors",
            "Failed provider calls by kind (transient, uncertain, permanent, unexpected)",
            ["operation", "kind", "status_code"],
            registry=self.registry,
        )
        self.delivery_reports = Counter(
            "smsgw_delivery_reports_received",
            "Delivery-report callbacks received: accepted (2xx), rejected (4xx), error (5xx)",
            ["result"],
            registry=self.registry,
        )
        # Database gauges, read at most once per SMSGW_METRICS_CACHE_SECONDS.
        self.gauge_cache: SnapshotCache | None = None


class BreakerCollector(Collector):
    """``smsgw_provider_circuit_state``: read at scrape time from ``runtime.breaker``.

    Works before a breaker exists (always ``closed``) and with any object whose
    ``state`` is ``"closed"``, ``"open"`` or ``"half_open"``.
    """

    def __init__(self, runtime: RuntimeView) -> None:
        self.runtime = runtime

    def collect(self) -> Iterator[Metric]:
        breaker = getattr(self.runtime, "breaker", None)
        state = str(getattr(breaker, "state", "closed") or "closed")
        family = GaugeMetricFamily(
            "smsgw_provider_circuit_state",
            "Circuit breaker in front of the provider: 1 for the current state",
            labels=["state"],
        )
        for known in BREAKER_STATES:
            family.add_metric([known], 1.0 if state == known else 0.0)
        if state not in BREAKER_STATES:
            family.add_metric([state], 1.0)
        yield family


class LoopCollector(Collector):
    """Each background loop of this process: failed passes, heartbeat age, stalled."""

    def __init__(self, runtime: RuntimeView) -> None:
        self.runtime = runtime

    def collect(self) -> Iterator[Metric]:
        failures = CounterMetricFamily(
            "smsgw_loop_failures",
            "Passes of a background loop that raised; the loop went on after each",
            labels=["loop"],
        )
        age = GaugeMetricFamily(
            "smsgw_loop_heartbeat_age_seconds",
            "Seconds since the loop last completed a pass (since it started, before that)",
            labels=["loop"],
        )
        stalled = GaugeMetricFamily(
            "smsgw_loop_stalled",
            "1 while the loop makes no progress (see SMSGW_LOOP_STALL_SECONDS)",
            labels=["loop"],
        )
        allowance = self.runtime.settings.worker.stall_seconds
        now = time.monotonic()
        for loop in running_loops():
            beat = loop.heartbeat
            last = beat.last_pass_at or beat.started_at or now
            failures.add_metric([loop.name], float(beat.errors))
            age.add_metric([loop.name], max(0.0, now - last))
            stalled.add_metric([loop.name], 1.0 if loop.stalled(allowance) else 0.0)
        yield from (failures, age, stalled)


class SnapshotCollector(Collector):
    """Yields the gauges of one ``DatabaseSnapshot`` (None: the database is down)."""

    def __init__(self, snapshot: DatabaseSnapshot | None) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "smsgw_metrics_database_up", "Whether the database gauges could be read"
        )
        up.add_metric([], 0.0 if self.snapshot is None else 1.0)
        yield up
        snap = self.snapshot
        if snap is None:
            return
        yield _gauge(
            "smsgw_metrics_database_seconds", "Time the gauge queries took", snap.query_seconds
        )
        messages = GaugeMetricFamily(
            "smsgw_messages",
            "Messages created in the last SMSGW_METRICS_MESSAGES_WINDOW_SECONDS, by status",
            labels=["client", "status"],
        )
        for (client, status), count in sorted(snap.messages.items()):
            messages.add_metric([client, status], float(count))
        yield messages
        yield _gauge("smsgw_queue_depth", "Queued messages that are due now", snap.queue_due)
        yield _gauge(
            "smsgw_queue_oldest_due_age_seconds",
            "How long the oldest due message has been waiting (0: none due)",
            snap.queue_oldest_due_age,
        )
        yield _gauge("smsgw_queue_scheduled", "Queued messages due later", snap.queue_scheduled)
        yield _gauge("smsgw_messages_sending", "Messages held by a dispatcher", snap.sending)
        webhooks = GaugeMetricFamily(
            "smsgw_webhooks_pending", "Webhook deliveries not yet acknowledged", labels=["client"]
        )
        for client, count in sorted(snap.webhooks_pending.items()):
            webhooks.add_metric([client], float(count))
        yield webhooks
        yield from _credit_families(snap)
        circuits = GaugeMetricFamily(
            "smsgw_provider_circuit_reported_state",
            "Circuit breaker state last stored by any worker: 1 for that state",
            labels=["provider", "state"],
        )
        failures = GaugeMetricFamily(
            "smsgw_provider_consecutive_failures",
            "Provider failures in a row last stored by any worker",
            labels=["provider"],
        )
        for provider, (state, count) in sorted(snap.circuits.items()):
            for known in sorted({*BREAKER_STATES, state}):
                circuits.add_metric([provider, known], 1.0 if state == known else 0.0)
            failures.add_metric([provider], float(count))
        yield circuits
        yield failures


def _credit_families(snap: DatabaseSnapshot) -> Iterable[Metric]:
    left = GaugeMetricFamily(
        "smsgw_client_credits_left", "Credits left (clients with a quota)", labels=["client"]
    )
    quota = GaugeMetricFamily("smsgw_client_quota", "Credits granted so far", labels=["client"])
    threshold = GaugeMetricFamily(
        "smsgw_client_alert_threshold", "Low-credit alert threshold", labels=["client"]
    )
    for client, credits in sorted(snap.credits.items()):
        left.add_metric([client], credits.credits_left)
        if credits.quota is not None:
            quota.add_metric([client], credits.quota)
        if credits.alert_threshold is not None:
            threshold.add_metric([client], credits.alert_threshold)
    return (left, quota, threshold)


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation)
    family.add_metric([], float(value))
    return family


def snapshot_cache(runtime: RuntimeView) -> SnapshotCache:
    """The runtime's gauge cache, made on first use."""
    metrics = runtime.metrics
    if metrics.gauge_cache is None:
        settings = runtime.settings
        metrics.gauge_cache = SnapshotCache(
            settings.metrics.cache_seconds,
            timedelta(seconds=settings.metrics.messages_window_seconds),
        )
    return metrics.gauge_cache


def process_registry(runtime: RuntimeView) -> CollectorRegistry:
    """This process's metrics, or every worker's under ``PROMETHEUS_MULTIPROC_DIR``."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return registry
    return runtime.metrics.registry


async def render(runtime: RuntimeView) -> bytes:
    """The text exposition of this process's metrics plus the database gauges."""
    try:
        snapshot = await snapshot_cache(runtime).get(runtime.sessionmaker)
    except Exception as exc:
        log.warning("metrics: database gauges unavailable: %s", type(exc).__name__)
        snapshot = None
    registry = CollectorRegistry()
    registry.register(_Forward(process_registry(runtime)))
    registry.register(BreakerCollector(runtime))
    registry.register(LoopCollector(runtime))
    registry.register(SnapshotCollector(snapshot))
    return generate_latest(registry)


class _Forward(Collector):
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterable[Metric]:
        return self.registry.collect()


router = APIRouter(tags=["ops"])
_bearer = HTTPBearer(auto_error=False, description="SMSGW_METRICS_TOKEN or the admin token")


def check_metrics(runtime: RuntimeView, credentials: HTTPAuthorizationCredentials | None) -> None:
    """Refuse (401) anything but the metrics token or the admin token."""
    api = runtime.settings.api
    given = (credentials.credentials if credentials else "").encode()
    for token in (api.metrics_token, api.admin_token):
        expected = token.get_secret_value().encode() if token else b""
        if expected and given and hmac.compare_digest(given, expected):
            return
    headers = {"WWW-Authenticate": "Bearer"}
    raise Problem(401, "unauthorized", "Metrics token required", headers=headers)


@router.get("/metrics", include_in_schema=False)
async def metrics(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Response:
    """Prometheus text format, for SMSGW_METRICS_TOKEN or the admin token (a 401 otherwise)."""
    runtime: RuntimeView = request.app.state.runtime
    check_metrics(runtime, credentials)
    return Response(await render(runtime), media_type=CONTENT_TYPE)


def serve_worker_metrics(runtime: RuntimeView, host: str, port: int) -> Any:
    """Serve a worker's process-local metrics (and breaker state) over HTTP in a thread.

    Returns the server; ``server.shutdown()`` stops it.
    """
    from prometheus_client import start_http_server

    registry = CollectorRegistry()
    registry.register(_Forward(runtime.metrics.registry))
    registry.register(BreakerCollector(runtime))
    registry.register(LoopCollector(runtime))
    server, _thread = start_http_server(port, addr=host, registry=registry)
    log.info("worker metrics on http://%s:%d/metrics", host, port)
    return server
