"""Guessing a token is slow: failed authentications are counted per source address.

Every token is counted: the admin token, the metrics token and API keys (a
``401`` anywhere), and the callback token, a path segment of
``/v1/providers/…`` (a ``404`` there). Each source address may fail
``per_minute`` times a minute on each of the two kinds; past that, every
request of that kind from it (health checks aside) is a ``429`` with
``Retry-After`` until the minute ends, a right token included, so guessing
stays at ``per_minute`` tries a minute. ``address`` gives the caller's
address as the allowlists see it (trusted proxies' ``X-Forwarded-For``
believed), so one proxy's address does not lock everyone out. Counted in the
process, like the rate limits: ``N`` API processes allow ``N`` times more.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from smsgateway.clients.ratelimit import retry_after_header
from smsgateway.errors import Problem, problem_response

log = logging.getLogger(__name__)

CALLBACKS = "/v1/providers/"
UNGUARDED = frozenset({"/healthz", "/readyz"})
MAX_ADDRESSES = 100_000


class FailedAuthThrottle:
    """ASGI middleware; see the module's text."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        per_minute: int,
        address: Callable[[Scope], str | None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.app = app
        self.per_minute = per_minute
        self.address = address
        self.clock = clock
        self._failures: dict[str, tuple[int, int]] = {}  # key -> (minute, failures)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", ""))
        if scope["type"] != "http" or path in UNGUARDED or self.per_minute <= 0:
            await self.app(scope, receive, send)
            return
        kind, failure = ("callback", 404) if path.startswith(CALLBACKS) else ("token", 401)
        key = f"{kind}|{self.address(scope) or '-'}"
        minute = int(self.clock() // 60)
        window, failures = self._failures.get(key, (minute, 0))
        if window == minute and failures >= self.per_minute:
            refused = Problem(
                429,
                "too-many-failed-attempts",
                "Too many failed attempts",
                "Too many wrong tokens from this address: wait before trying again.",
                headers={"Retry-After": retry_after_header(60 - self.clock() % 60)},
            )
            await problem_response(refused)(scope, receive, send)
            return
        status = 0

        async def watching_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        await self.app(scope, receive, watching_send)
        if status == failure:
            self._failed(key, minute)

    def _failed(self, key: str, minute: int) -> None:
        window, failures = self._failures.get(key, (minute, 0))
        count = failures + 1 if window == minute else 1
        self._failures[key] = (minute, count)
        if count == self.per_minute:
            log.warning("authentication failures from one address: refused until the minute ends")
        if len(self._failures) > MAX_ADDRESSES:
            self._failures = {k: v for k, v in self._failures.items() if v[0] == minute}
