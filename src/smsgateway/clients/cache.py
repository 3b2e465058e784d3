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

from smsgateway.clients.models import ApiClient

_COLUMNS = tuple(attr.key for attr in ApiClient.__mapper__.column_attrs)


class ClientCache:
    def __init__(
        self, seconds: float, *, size: int = 1024, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.seconds = seconds
        self.size = size
        self._clock = clock
        self._rows: dict[str, tuple[float, dict[str, Any]]] = {}
        self._webhooks: dict[str, tuple[float, str | None]] = {}

    def get(self, session: AsyncSession, key_hash: str) -> ApiClient | None:
        """The cached client attached to ``session``, or None when absent or stale."""
        found = self._rows.get(key_hash)
        if found is None:
            return None
        expires, values = found
        if self._clock() >= expires:
            del self._rows[key_hash]
            return None
        existing = session.identity_map.get(identity_key(ApiClient, values["id"]))
        if isinstance(existing, ApiClient):
            return existing  # this session has the row already
        client = ApiClient(**values)
        make_transient_to_detached(client)
        session.add(client)
        return client

    def put(self, key_hash: str, client: ApiClient) -> None:
        if self.seconds <= 0:
            return
        if len(self._rows) >= self.size:
            self._rows.clear()  # rare (more clients than slots): start over
        values = {name: getattr(client, name) for name in _COLUMNS}
        self._rows[key_hash] = (self._clock() + self.seconds, values)

    def webhook_url(self, client_id: str) -> tuple[bool, str | None]:
        """(known, url): a client's webhook address as read lately, for the dispatcher."""
        found = self._webhooks.get(client_id)
        if found is None or self._clock() >= found[0]:
            return False, None
        return True, found[1]

    def put_webhook_url(self, client_id: str, url: str | None) -> None:
        if self.seconds <= 0:
            return
        if len(self._webhooks) >= self.size:
            self._webhooks.clear()
        self._webhooks[client_id] = (self._clock() + self.seconds, url)

    def clear(self) -> None:
        self._rows.clear()
        self._webhooks.clear()
