"""Waking a loop from another process: LISTEN on a PostgreSQL channel.

Only a wake-up: a loop still polls, so a notification missed while the
listening connection was down costs at most one poll interval.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from smsgateway.workers.loop import SupervisedLoop, error_backoff, wait_for_any

# How often a held LISTEN connection is checked for having been closed.
_CHECK_SECONDS = 5.0


class Listener:
    """Sets ``wakeup`` on each NOTIFY on ``channel``; reconnects after ``retry_seconds``."""

    def __init__(
        self, engine: AsyncEngine, channel: str, wakeup: asyncio.Event, *, retry_seconds: float
    ) -> None:
        self.engine = engine
        self.channel = channel
        self.wakeup = wakeup
        self._stop = asyncio.Event()
        # A lost connection is routine (failover, restart): a warning, never a traceback.
        self.loop = SupervisedLoop(
            f"listener {channel}",
            self._hold,
            backoff=error_backoff(retry_seconds),
            expected=(Exception,),
            bounded_passes=False,  # a pass holds the connection for as long as it lasts
        )

    async def run(self, stop: asyncio.Event) -> None:
        self._stop = stop
        await self.loop.run(stop)

    async def _hold(self) -> float:
        """Listen until ``stop`` or until the connection closes; then listen again at once."""
        async with self.engine.connect() as connection:
            raw = await connection.get_raw_connection()
            driver: Any = raw.driver_connection
            await driver.add_listener(self.channel, self._notified)
            try:
                while not self._stop.is_set() and not driver.is_closed():
                    await wait_for_any(self._stop, None, seconds=_CHECK_SECONDS)
            finally:
                with contextlib.suppress(Exception):
                    await driver.remove_listener(self.channel, self._notified)
        return 0.0

    def _notified(self, *_args: object) -> None:
        self.wakeup.set()
