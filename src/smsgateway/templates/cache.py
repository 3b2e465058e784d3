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

from smsgateway.expiring import Expiring

# Bumped by every template write in this process: a copy read before it is stale.
_generation = 0


def templates_changed() -> None:
    global _generation
    _generation += 1


class TemplateCache:
    def __init__(self, seconds: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        # pair -> (the write generation it was read in, the templates)
        self._pairs: Expiring[tuple[str, str], tuple[int, object]] = Expiring(seconds, clock=clock)

    def get(self, pair: tuple[str, str]) -> object | None:
        found = self._pairs.get(pair)
        if found is None or found[0] != _generation:
            return None
        return found[1]

    def put(self, pair: tuple[str, str], value: object) -> None:
        self._pairs.put(pair, (_generation, value))
