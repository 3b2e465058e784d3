"""The stored templates of each (event type, role), kept for a few seconds per process.

Rendering a booking SMS needs the templates of its (type, role); reading them
for every message is a database round trip on the hot path. Templates change
rarely (ops edit them), so each process keeps what it read for
``SMSGW_TEMPLATE_CACHE_SECONDS``. A write in this process (``put_template``,
``delete_template``) discards every process-local copy at once; a write made
by another process applies here within that time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

# Bumped by every template write in this process: a copy read before it is stale.
_generation = 0


def templates_changed() -> None:
    global _generation
    _generation += 1


class TemplateCache:
    def __init__(self, seconds: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._pairs: dict[tuple[str, str], tuple[float, int, object]] = {}

    def get(self, pair: tuple[str, str]) -> object | None:
        found = self._pairs.get(pair)
        if found is None:
            return None
        expires, generation, value = found
        if generation != _generation or self._clock() >= expires:
            del self._pairs[pair]
            return None
        return value

    def put(self, pair: tuple[str, str], value: object) -> None:
        if self.seconds > 0:
            self._pairs[pair] = (self._clock() + self.seconds, _generation, value)
