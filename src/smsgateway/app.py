"""The FastAPI application: ``create_app()`` and the lifespan that owns resources."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc

from smsgateway import __version__
from smsgateway.callbacks.endpoints import router as callbacks_router
from smsgateway.callbacks.incoming import router as incoming_router
from smsgateway.clients.account import router as account_router
from smsgateway.clients.endpoints import router as admin_clients_router
from smsgateway.config import Settings, get_settings
from smsgateway.errors import Problem, install_handlers, problem_response, safe_path
from smsgateway.estimates import router as estimates_router
from smsgateway.events.endpoints import router as events_router
from smsgateway.health import router as health_router
from smsgateway.messages.endpoints import router as messages_router
from smsgateway.phones.endpoints import router as phones_router
from smsgateway.runtime import Runtime, build_runtime
from smsgateway.templates.endpoints import router as templates_router
from smsgateway.webhooks.endpoints import router as webhooks_router
from smsgateway.worker import run_workers

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

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = runtime is None
        current = runtime or build_runtime(settings)
        app.state.runtime = current
        stop = asyncio.Event()
        worker: asyncio.Task[None] | None = None
        if run_worker:
            worker = asyncio.create_task(run_workers(current, stop))
        try:
            yield
        finally:
            stop.set()
            if worker is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await worker
            if owned:
                await current.aclose()

    app = FastAPI(
        title="smsgateway",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    install_handlers(app)

    @app.exception_handler(sa_exc.OperationalError)
    @app.exception_handler(sa_exc.InterfaceError)
    @app.exception_handler(sa_exc.TimeoutError)
    @app.exception_handler(ConnectionError)
    async def _database_down(request: Request, exc: Exception) -> JSONResponse:
        # Nothing was committed: say so rather than acknowledge what we cannot keep.
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

    app.include_router(events_router)
    app.include_router(messages_router)
    app.include_router(phones_router)
    app.include_router(estimates_router)
    app.include_router(account_router)
    app.include_router(templates_router)
    app.include_router(callbacks_router)
    app.include_router(incoming_router)
    app.include_router(webhooks_router)
    app.include_router(admin_clients_router)
    app.include_router(health_router)
    return app
