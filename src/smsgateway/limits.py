"""Hostile-input guards that sit in front of the routes, and log scrubbing.

:class:`BodySizeLimit` is a pure ASGI middleware (no ``BaseHTTPMiddleware``, so request
bodies keep streaming): a request whose ``Content-Length`` is over the limit of its
path is answered ``413`` before a byte of the body is read, and a body sent without a
length (chunked) is counted as it streams, and cut off with the same ``413`` once it
goes over. The limit is per path prefix (the longest prefix wins), so campaign
uploads can be given more room than a booking event.

:class:`ScrubAccessLog` masks what must never reach a log line in the paths uvicorn's
access log writes: the callback token (a path segment of the provider callback URLs),
the query strings of those callbacks (they carry the receiver's number) and phone
numbers anywhere else in a path (``PATCH /v1/phones/+33611223344``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Mapping
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from smsgateway.errors import PROBLEM_JSON, Problem, problem_response

log = logging.getLogger(__name__)

MIB = 1024 * 1024


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` when a streamed body goes over its limit.

    It is an ``HTTPException`` so a route that is reading the body turns it into
    the usual problem answer; the middleware answers it itself otherwise.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(413, _detail(limit), headers={"Connection": "close"})
        self.limit = limit


class BodyReadTimeout(HTTPException):
    """Raised from ``receive`` when a body's next part is slower than the read timeout."""

    def __init__(self, seconds: float) -> None:
        detail = f"No part of the request body came for {seconds:g} s."
        super().__init__(408, detail, headers={"Connection": "close"})


def _detail(limit: int) -> str:
    return f"The request body is larger than the limit of {limit} bytes for this path."


def too_large_problem(limit: int) -> Problem:
    return Problem(
        413,
        "payload-too-large",
        "Request body too large",
        _detail(limit),
        limit_bytes=limit,
    )


class BodySizeLimit:
    """Answer ``413`` to request bodies over the limit of their path."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        default_limit: int = MIB,
        path_limits: Mapping[str, int] | None = None,
        read_timeout: float | None = None,
    ) -> None:
        self.app = app
        self.default_limit = default_limit
        self.read_timeout = read_timeout
        # Longest prefix first, so "/v1/campaigns/uploads" beats "/v1/campaigns".
        self.path_limits = sorted((path_limits or {}).items(), key=lambda item: -len(item[0]))

    def limit_for(self, path: str) -> int:
        for prefix, limit in self.path_limits:
            if path == prefix or path.startswith(prefix.rstrip("/") + "/"):
                return limit
        return self.default_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(str(scope.get("path", "")))
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            log.info("refused a %d-byte body on %s (limit %d)", declared, scope["method"], limit)
            await _answer(scope, send, limit)
            return

        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            try:
                async with asyncio.timeout(self.read_timeout):
                    message = await receive()
            except TimeoutError:
                raise BodyReadTimeout(self.read_timeout or 0) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def watching_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, watching_send)
        except BodyTooLarge:
            # A handler that reads the body answers this itself (it is an HTTPException);
            # this covers code that reads it outside a route.
            if started:
                raise
            await _answer(scope, send, limit)
        except BodyReadTimeout as slow:
            if started:
                raise
            timed_out = Problem(
                408,
                "request-timeout",
                "Request timeout",
                str(slow.detail),
                headers={"Connection": "close"},
            )
            await problem_response(timed_out)(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server refuses a malformed length before we see it
    return None


async def _answer(scope: Scope, send: Send, limit: int) -> None:
    instance = scrub(str(scope.get("path", "")))  # no callback token echoed back
    body = json.dumps(too_large_problem(limit).body(instance)).encode()
    # The client may still be sending: closing the connection is the only way to make
    # it stop, and it tells a well-behaved client not to reuse it mid-body.
    headers = [
        (b"content-type", PROBLEM_JSON.encode()),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})


# -- logs -------------------------------------------------------------------------------

_CALLBACK = re.compile(r"(/v1/providers/[^/\s?\"]+/)[^/\s?\"]+((?:/[^\s?\"]*)?)(\?[^\s\"]*)?")
# An E.164 number: "+" (or its percent-encoding) and 8 to 15 digits, anywhere; or bare
# digits as the number segment of /v1/phones/{number}.
_PHONE = re.compile(r"(?:\+|%2[Bb])(\d{8,15})(?!\d)|(?<=/v1/phones/)(\d{8,15})(?!\d)")


def scrub(text: str) -> str:
    """``text`` with callback tokens, callback queries and phone numbers masked."""
    text = _CALLBACK.sub(
        lambda m: f"{m.group(1)}{{token}}{m.group(2)}" + ("?…" if m.group(3) else ""), text
    )
    return _PHONE.sub(_mask_phone, text)


def _mask_phone(match: re.Match[str]) -> str:
    digits = match.group(1) or match.group(2)
    prefix = match.group(0)[: len(match.group(0)) - len(digits)]
    # As ``numbers.mask`` does: the country and the last two digits stay.
    return prefix + digits[:2] + "*" * (len(digits) - 4) + digits[-2:]


class ScrubAccessLog(logging.Filter):
    """Masks secrets and numbers in a record's message and string arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = scrub(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_scrub_arg(arg) for arg in record.args)
        elif isinstance(record.args, Mapping):
            record.args = {key: _scrub_arg(value) for key, value in record.args.items()}
        return True


def _scrub_arg(value: Any) -> Any:
    return scrub(value) if isinstance(value, str) else value


def install_log_scrubbing(*logger_names: str) -> None:
    """Add :class:`ScrubAccessLog` to the named loggers (idempotent)."""
    for name in logger_names or ("uvicorn.access", "uvicorn.error"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, ScrubAccessLog) for f in logger.filters):
            logger.addFilter(ScrubAccessLog())
