"""Keeping the process on the database's clock.

``db.utcnow`` is the process clock plus an offset measured against
PostgreSQL; this loop measures it at start-up and again every
``SYNC_SECONDS``, so a process whose clock is minutes off (or steps) still
compares leases, settle windows and due times by the database's time.
"""

from __future__ import annotations

import asyncio
import logging

from smsgateway.db import sync_clock
from smsgateway.runtime import Runtime
from smsgateway.workers.loop import SupervisedLoop, error_backoff

log = logging.getLogger(__name__)

SYNC_SECONDS = 10.0
# An offset past this is worth a warning: the host's time service is not working.
WARN_OFFSET_SECONDS = 2.0


class ClockSync:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.loop = SupervisedLoop("clock sync", self.sync, backoff=error_backoff(1.0))
        self._warned = False

    async def run(self, stop: asyncio.Event) -> None:
        await self.loop.run(stop)

    async def sync(self) -> float:
        offset = (await sync_clock(self.runtime.engine)).total_seconds()
        if abs(offset) > WARN_OFFSET_SECONDS and not self._warned:
            log.warning(
                "this host's clock is %.1fs off the database's; using the database's", -offset
            )
            self._warned = True
        return SYNC_SECONDS
