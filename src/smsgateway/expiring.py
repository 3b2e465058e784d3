"""A small per-process map whose entries expire: what the hot-path caches keep."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class Expiring(Generic[K, V]):
    """Entries live ``seconds`` after they are put; ``seconds`` 0 keeps nothing.

    Past ``size`` entries the map starts over: it serves a handful of keys (clients,
    template pairs), so that is rare and costs one read per key.
    """

    def __init__(
        self, seconds: float, *, size: int = 1024, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.seconds = seconds
        self.size = size
        self._clock = clock
        self._entries: dict[K, tuple[float, V]] = {}

    def get(self, key: K) -> V | None:
        found = self._entries.get(key)
        if found is None:
            return None
        if self._clock() >= found[0]:
            del self._entries[key]
            return None
        return found[1]

    def put(self, key: K, value: V) -> None:
        if self.seconds <= 0:
            return
        if len(self._entries) >= self.size:
            self._entries.clear()
        self._entries[key] = (self._clock() + self.seconds, value)

    def clear(self) -> None:
        self._entries.clear()
