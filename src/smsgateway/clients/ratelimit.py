"""Per-client request rate limit: a token bucket per client, in memory.

Each client has a bucket holding at most ``max(1, rate)`` tokens, refilled at
``rate`` tokens a second; a request takes one token or is refused with the
time until the next one. A burst of ``rate`` requests therefore passes at
once, and the long-run rate never exceeds ``rate``.

The buckets live in the process (on the ``Runtime``), not in the database:
checking costs no query on every request. The price is that the limit is per
API process: ``N`` API processes behind a load balancer let a client make up
to ``N * rate`` requests a second. Size the per-client rate with that in mind.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


@dataclass
class RateLimiter:
    """Token buckets keyed by client id.

    ``take`` never awaits, so on one event loop it is atomic without a lock.
    """

    clock: Callable[[], float] = time.monotonic
    _buckets: dict[str, _Bucket] = field(default_factory=dict)

    def take(self, key: str, rate: float | None) -> float | None:
        """Take one token from ``key``'s bucket.

        Returns None when the request may go on (always, for ``rate`` None:
        unlimited), else the seconds until a token will be there.
        """
        if rate is None:
            return None
        capacity = max(1.0, rate)
        now = self.clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(tokens=capacity, updated=now)
        else:
            # A lowered rate also lowers the ceiling of a full bucket at once.
            bucket.tokens = min(capacity, bucket.tokens + (now - bucket.updated) * rate)
            bucket.updated = now
        # The tolerance lets a caller who waited exactly the announced time in
        # despite float rounding.
        if bucket.tokens >= 1.0 - 1e-9:
            bucket.tokens = max(0.0, bucket.tokens - 1.0)
            return None
        return (1.0 - bucket.tokens) / rate

    def forget(self, key: str) -> None:
        self._buckets.pop(key, None)


def retry_after_header(wait_seconds: float) -> str:
    """``Retry-After`` is whole seconds; round up, and never say 0 (clients would spin)."""
    return str(max(1, math.ceil(wait_seconds)))
