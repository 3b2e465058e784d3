"""Helpers the API tests share: messages sent through the API, stored rows, a clock.

Each goes through the public API where a user would (and asserts the status a user
expects), or reads and adjusts rows the way only a test needs to (a client's balance,
a message made due at once).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import select, update

from smsgateway.db import utcnow
from smsgateway.models.clients import ApiClient
from smsgateway.models.messages import Message
from smsgateway.runtime import Runtime


class Clock:
    """A clock for the caches that moves only when a test sets ``now``."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def bearer(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}


async def balance(runtime: Runtime, client_id: str) -> Decimal | None:
    """The client's credits left (None: no quota)."""
    async with runtime.sessionmaker() as session:
        client = await session.get(ApiClient, client_id)
        assert client is not None
        return client.balance


async def send_message(
    http: httpx.AsyncClient, auth: dict[str, str], **body: Any
) -> dict[str, Any]:
    """``POST /v1/messages`` with ``body`` (``to``, ``text``…), accepted: the message."""
    response = await http.post("/v1/messages", json=body, headers=auth)
    assert response.status_code == 202, response.text
    message: dict[str, Any] = response.json()
    return message


async def first_message(
    http: httpx.AsyncClient, auth: dict[str, str], event: dict[str, Any]
) -> dict[str, Any]:
    """``POST /v1/booking-events`` with a new event: the first message it made."""
    response = await http.post("/v1/booking-events", json=event, headers=auth)
    assert response.status_code == 202, response.text
    message: dict[str, Any] = response.json()["messages"][0]
    return message


async def stored_message(runtime: Runtime, message_id: str) -> Message:
    async with runtime.sessionmaker() as session:
        message = await session.get(Message, message_id)
    assert message is not None
    return message


async def stored_messages(runtime: Runtime) -> dict[str, Message]:
    """Every stored message, by id."""
    async with runtime.sessionmaker() as session:
        return {m.id: m for m in (await session.scalars(select(Message))).all()}


async def make_due(runtime: Runtime, message_id: str | None = None) -> None:
    """Make one message (default: every message) due now, as if its wait had passed."""
    statement = update(Message).values(due_at=utcnow())
    if message_id is not None:
        statement = statement.where(Message.id == message_id)
    async with runtime.sessionmaker() as session, session.begin():
        await session.execute(statement)


async def asgi_post(
    app: Any,
    path: str,
    body: dict[str, Any],
    headers: dict[str, str],
    on_start: Callable[[int], Awaitable[None]],
) -> None:
    """POST ``body`` to ``app`` directly over ASGI; ``on_start(status)`` runs as the answer starts.

    Unlike an HTTP client, which returns once the whole app call is over, this
    sees the moment the answer leaves: what ``on_start`` finds committed then is
    what a client that has the answer may rely on.
    """
    raw = json.dumps(body).encode()
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "server": ("test", 80),
        "client": ("127.0.0.1", 50000),
        "headers": [
            (b"host", b"test"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(raw)).encode()),
            *[(k.lower().encode(), v.encode()) for k, v in headers.items()],
        ],
    }
    chunks = [{"type": "http.request", "body": raw, "more_body": False}]

    async def receive() -> dict[str, Any]:
        return chunks.pop(0) if chunks else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            await on_start(message["status"])

    await app(scope, receive, send)
