"""Clients by API key hash, kept for a few seconds by each API process.

Every API request names its client by key; reading the client's row for each
one is a database round trip on the hot path. This cache keeps the row's
columns (never the key itself, only its hash as the cache key) and rebuilds a
session-bound ``ApiClient`` from them without a query.

A change made through this process's admin API empties the cache at once.
A change made elsewhere (another API process, the ``smsgateway clients``
command) reaches this process within ``SMSGW_CLIENT_CACHE_SECONDS``: a
disabled client or a rotated key keeps working that long, and so do a new
allowlist, rate limit or webhook address. Credits are never read from it:
reservations and refunds update the balance in the database.

The dispatcher also keeps each client's webhook address here, so that a
message sent for a client without webhooks needs no look-up to say so.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import make_transient_to_detached
from sqlalchemy.orm.util import identity_key

from smsgateway.expiring import Expiring
from smsgateway.models.clients import ApiClient

_COLUMNS = tuple(attr.key for attr in ApiClient.__mapper__.column_attrs)


class ClientCache:
    def __init__(
        self, seconds: float, *, size: int = 1024, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.seconds = seconds
        self._rows: Expiring[str, dict[str, Any]] = Expiring(seconds, size=size, clock=clock)
        # client id -> webhook address, "" for none
        self._webhooks: Expiring[str, str] = Expiring(seconds, size=size, clock=clock)

    def get(self, session: AsyncSession, key_hash: str) -> ApiClient | None:
        """The cached client attached to ``session``, or None when absent or stale."""
        values = self._rows.get(key_hash)
        if values is None:
            return None
        existing = session.identity_map.get(identity_key(ApiClient, values["id"]))
        if isinstance(existing, ApiClient):
            return existing  # this session has the row already
        client = ApiClient(**values)
        make_transient_to_detached(client)
        session.add(client)
        return client

    def put(self, key_hash: str, client: ApiClient) -> None:
        self._rows.put(key_hash, {name: getattr(client, name) for name in _COLUMNS})

    def webhook_url(self, client_id: str) -> str | None:
        """A client's webhook address as read lately ("" for none), None if not known."""
        return self._webhooks.get(client_id)

    def put_webhook_url(self, client_id: str, url: str | None) -> None:
        self._webhooks.put(client_id, url or "")

    def clear(self) -> None:
        self._rows.clear()
        self._webhooks.clear()
