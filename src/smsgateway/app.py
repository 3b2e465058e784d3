"""The FastAPI application: ``create_app()`` and the lifespan that owns resources."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc

from smsgateway import __version__
from smsgateway.callbacks.endpoints import router as callbacks_router
from smsgateway.callbacks.incoming import router as incoming_router
from smsgateway.campaigns.endpoints import router as campaigns_router
from smsgateway.clients.account import router as account_router
from smsgateway.clients.endpoints import router as admin_clients_router
from smsgateway.clients.network import request_address
from smsgateway.config import Settings, get_settings
from smsgateway.credits.reservations import refused_at_commit
from smsgateway.db import UnstorableValue, sqlstate
from smsgateway.errors import Problem, install_handlers, problem_response, safe_path
from smsgateway.estimates import router as estimates_router
from smsgateway.events.endpoints import router as events_router
from smsgateway.guessing import FailedAuthThrottle
from smsgateway.health import router as health_router
from smsgateway.limits import BodySizeLimit, install_log_scrubbing
from smsgateway.messages.endpoints import router as messages_router
from smsgateway.observability.metrics import router as metrics_router
from smsgateway.observability.middleware import ObservabilityMiddleware
from smsgateway.openapi_problems import install as describe_problems
from smsgateway.phones.endpoints import router as phones_router
from smsgateway.privacy.endpoints import router as privacy_router
from smsgateway.runtime import Runtime, build_runtime
from smsgateway.templates.endpoints import router as templates_router
from smsgateway.webhooks.endpoints import router as webhooks_router
from smsgateway.worker import run_workers
from smsgateway.workers.clock import ClockSync

log = logging.getLogger(__name__)

DESCRIPTION = """\
smsgateway turns a marketplace's booking events into SMS, sends them through
OVHcloud, and reports what happened. Clients authenticate with
`Authorization: Bearer <api key>`. Errors are `application/problem+json`
(RFC 9457).
"""


def create_app(
    settings: Settings | None = None,
    *,
    runtime: Runtime | None = None,
    run_worker: bool = False,
) -> FastAPI:
    """The API. ``run_worker`` also runs the dispatcher in this process."""
    settings = runtime.settings if runtime is not None else (settings or get_settings())
    app = FastAPI(
        title="smsgateway",
        version=__version__,
        description=DESCRIPTION,
        lifespan=_lifespan(settings, runtime, run_worker),
    )
    install_handlers(app)
    describe_problems(app)
    app.add_middleware(
        BodySizeLimit,
        default_limit=settings.api.max_body_bytes,
        path_limits=settings.api.max_body_bytes_by_path,
        read_timeout=settings.api.body_read_timeout_seconds,
    )
    trusted = settings.api.trusted_proxies
    app.add_middleware(
        FailedAuthThrottle,
        per_minute=settings.api.auth_failures_per_minute,
        address=lambda scope: str(request_address(Request(scope), trusted) or ""),
    )
    # Access log lines carry paths: no callback token or phone number may reach them.
    install_log_scrubbing("smsgateway.access", "uvicorn.access")
    _install_database_handlers(app)
    _include_routers(app)
    # Observability: GET /metrics, and a request id, access log line and HTTP metrics
    # for every request. Added last, so it wraps every other middleware.
    app.include_router(metrics_router)
    app.add_middleware(ObservabilityMiddleware, access_log=settings.log.access_log)
    return app


Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def _lifespan(settings: Settings, runtime: Runtime | None, run_worker: bool) -> Lifespan:
    """Own the runtime (unless one was given) and, with ``run_worker``, the workers."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = runtime is None
        current = runtime or build_runtime(settings)
        app.state.runtime = current
        stop = asyncio.Event()
        # Without the workers, the API still keeps to the database's clock.
        background = run_workers(current, stop) if run_worker else ClockSync(current).run(stop)
        worker: asyncio.Task[object] = asyncio.create_task(background)
        try:
            yield
        finally:
            stop.set()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
            if owned:
                await current.aclose()

    return lifespan


def _include_routers(app: FastAPI) -> None:
    for router in (
        events_router,
        messages_router,
        campaigns_router,
        phones_router,
        estimates_router,
        account_router,
        templates_router,
        callbacks_router,
        incoming_router,
        webhooks_router,
        privacy_router,
        admin_clients_router,
        health_router,
    ):
        app.include_router(router)


def _install_database_handlers(app: FastAPI) -> None:
    """Answer database failures as problems: 503 when down or in conflict, 422, 402, 500."""
    for exc_type in (
        sa_exc.OperationalError,
        sa_exc.InterfaceError,
        sa_exc.TimeoutError,
        ConnectionError,
    ):
        app.add_exception_handler(exc_type, _database_down)
    app.add_exception_handler(sa_exc.DBAPIError, _database_error)
    app.add_exception_handler(UnstorableValue, _database_error)


async def _database_down(request: Request, exc: Exception) -> JSONResponse:
    # Nothing was committed: say so rather than acknowledge what we cannot keep.
    # (Also reached from _database_error for the SQLSTATEs of an unreachable database.)
    log.warning("database unavailable on %s: %s", safe_path(request), type(exc).__name__)
    log.debug("database error detail", exc_info=exc)
    problem = Problem(
        503,
        "database-unavailable",
        "Service unavailable",
        "The database cannot be reached; nothing was stored. Retry later.",
        headers={"Retry-After": "5"},
    )
    return problem_response(problem, request)


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    if sqlstate(exc).startswith("22"):
        # A value the database refuses (a NUL character, a value too long for
        # its column) that validation let through: the caller's input, not a fault.
        log.info("unstorable input on %s", safe_path(request))
        problem = Problem(
            422,
            "unstorable-value",
            "A value cannot be stored",
            "A field holds a character that is not allowed (such as NUL) or is too long.",
        )
        return problem_response(problem, request)
    if _database_unavailable(exc):
        return await _database_down(request, exc)
    spent = refused_at_commit(exc)
    if spent is not None:
        # A commit that reserved credits found them spent by a concurrent request
        # (the handlers that reserve commit with commit_reserved, which says more).
        return problem_response(spent, request)
    if not _transaction_conflict(exc):
        log.error("database error on %s %s", request.method, safe_path(request), exc_info=exc)
        problem = Problem(500, "internal-error", "Internal error", "The error was logged.")
        return problem_response(problem, request)
    # A deadlock or serialization failure rolled the whole transaction back:
    # nothing was stored, and the same request again will most likely pass.
    log.warning("transaction conflict on %s, answered 503", safe_path(request))
    problem = Problem(
        503,
        "transaction-conflict",
        "Conflict with a concurrent request",
        "The request conflicted with another one and nothing was stored. Retry it.",
        headers={"Retry-After": "1"},
    )
    return problem_response(problem, request)


# SQLSTATEs of a transaction PostgreSQL rolled back to resolve a conflict.
_RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})  # serialization failure, deadlock


def _transaction_conflict(exc: Exception) -> bool:
    return sqlstate(exc) in _RETRYABLE_SQLSTATES


def _database_unavailable(exc: Exception) -> bool:
    """A connection exception (08), no resources left (53: too many connections...),
    or the server shutting down or starting up (57P)."""
    code = sqlstate(exc)
    return code.startswith(("08", "53", "57P"))
