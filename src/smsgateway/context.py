"""The request id of the work in hand, carried from the HTTP request to the provider call.

The API sets it per request; the dispatcher sets it from the message it is
sending, so log lines and provider calls for one booking event share an id.
"""

from __future__ import annotations

from contextvars import ContextVar

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)


def current_request_id() -> str | None:
    return request_id.get()
