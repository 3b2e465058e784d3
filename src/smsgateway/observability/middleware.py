"""Every HTTP request gets an id, one access log line and its HTTP metrics.

The id is the caller's ``X-Request-ID`` when it is a sane token (at most 64 of
``A-Z a-z 0-9 . _ : -``), else a new random one; it is echoed in the ``X-Request-ID``
response header, set in ``smsgateway.context`` for the request's log lines, and stored
with every message the request creates, so the dispatcher's lines (in another process,
later) carry it too.

A pure ASGI middleware: no ``BaseHTTPMiddleware`` task and body streaming overhead.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from smsgateway.context import request_id
from smsgateway.errors import safe_path

log = logging.getLogger("smsgateway.access")

HEADER = "x-request-id"
_SANE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_DLR_ROUTE = "/v1/providers/ovh/{token}/dlr"


def new_request_id() -> str:
    return uuid.uuid4().hex


def _incoming_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            text = value.decode("latin-1")
            return text if _SANE.match(text) else None
    return None


class ObservabilityMiddleware:
    def __init__(self, app: ASGIApp, *, access_log: bool = True) -> None:
        self.app = app
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = _incoming_id(scope) or new_request_id()
        token = request_id.set(rid)
        started = time.perf_counter()
        status = 500
        header = (b"x-request-id", rid.encode("latin-1"))

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            self._record(scope, status, elapsed)
            request_id.reset(token)

    def _record(self, scope: Scope, status: int, elapsed: float) -> None:
        route = scope.get("route")
        template = getattr(route, "path", None) if route is not None else None
        route_label = template if isinstance(template, str) else "unmatched"
        method = scope.get("method", "")
        runtime: Any = getattr(getattr(scope.get("app"), "state", None), "runtime", None)
        metrics = getattr(runtime, "metrics", None)
        if metrics is not None:
            metrics.http_requests.labels(method, route_label, str(status)).inc()
            metrics.http_duration.labels(method, route_label).observe(elapsed)
            if route_label == _DLR_ROUTE:
                result = "accepted" if status < 400 else "rejected" if status < 500 else "error"
                metrics.delivery_reports.labels(result).inc()
        if self.access_log and log.isEnabledFor(logging.INFO):
            path = safe_path(Request(scope))
            log.info(
                "%s %s %d %.1f ms",
                method,
                path,
                status,
                elapsed * 1000,
                extra={
                    "method": method,
                    "path": path,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                },
            )
