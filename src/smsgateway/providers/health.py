"""Protecting the provider and the account: a circuit breaker and a call budget.

The **circuit breaker** stops a worker from hammering a provider that keeps
failing: after ``threshold`` transient failures in a row it opens, and no
message is claimed for ``cooldown`` seconds; then one probe is let through
(half-open) and its outcome closes or reopens the circuit. Each worker has
its own breaker; the last state any of them saw is stored in
``provider_state`` for ``/readyz`` and ``/metrics``.

The **call budget** keeps every worker together under a number of provider
calls per minute (OVHcloud asks for about 60 per consumer key): each call
takes one unit from the current minute's row in ``provider_call_windows``,
with a conditional upsert, so the count holds across processes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from smsgateway.db import upsert_for, utcnow
from smsgateway.models.providers import ProviderCallWindow, ProviderState

log = logging.getLogger(__name__)

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


class CircuitBreaker:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        provider: str,
        *,
        threshold: int,
        cooldown_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.provider = provider
        self.threshold = threshold
        self.cooldown = cooldown_seconds
        self.state = CLOSED
        self.failures = 0
        self._opened_at = 0.0
        self._clock = clock

    def allows(self) -> bool:
        """May messages be claimed now? Moves an open circuit to half-open after the cooldown."""
        if self.state == OPEN and self._clock() - self._opened_at >= self.cooldown:
            self.state = HALF_OPEN
            log.info("provider %s circuit half-open: probing", self.provider)
        return self.state != OPEN

    def seconds_until_probe(self) -> float:
        if self.state != OPEN:
            return 0.0
        return max(0.0, self.cooldown - (self._clock() - self._opened_at))

    async def succeeded(self) -> None:
        if self.state == CLOSED and self.failures == 0:
            return
        was = self.state
        self.state, self.failures = CLOSED, 0
        if was != CLOSED:
            log.info("provider %s circuit closed", self.provider)
        await self._store(None)

    async def failed(self, reason: str) -> None:
        self.failures += 1
        if self.state == HALF_OPEN or (self.state == CLOSED and self.failures >= self.threshold):
            self.state = OPEN
            self._opened_at = self._clock()
            log.warning(
                "provider %s circuit open after %d failures: %s",
                self.provider,
                self.failures,
                reason,
            )
            await self._store(reason)

    async def _store(self, reason: str | None) -> None:
        now = utcnow()
        values = {
            "circuit": self.state,
            "failures": self.failures,
            "opened_at": now if self.state == OPEN else None,
            "last_error": reason[:255] if reason else None,
            "updated_at": now,
        }
        try:
            async with self.sessionmaker() as session, session.begin():
                insert = upsert_for(session)
                await session.execute(
                    insert(ProviderState)
                    .values(provider=self.provider, **values)
                    .on_conflict_do_update(index_elements=["provider"], set_=values)
                )
        except Exception as exc:  # the breaker works in memory even if this fails
            log.warning("could not store the circuit state: %s", type(exc).__name__)


async def circuit_state(session: AsyncSession, provider: str) -> str:
    """The circuit state last stored by any worker ("closed" if none has been)."""
    state = await session.scalar(
        select(ProviderState.circuit).where(ProviderState.provider == provider)
    )
    return state or CLOSED


async def take_call(
    session: AsyncSession,
    provider: str,
    per_minute: int,
    now: datetime | None = None,
    *,
    minutes: int = 1,
) -> float:
    """Take one provider call from the budget of this window of ``minutes``.

    Returns 0 when the call may go, else the seconds until the next window.
    ``per_minute`` is then the budget of the whole window; 0 means no limit.
    ``minutes`` divides 60, so windows start on the hour.
    The caller commits.
    """
    if per_minute <= 0:
        return 0.0
    now = now or utcnow()
    window = now.replace(second=0, microsecond=0)
    window = window.replace(minute=window.minute - window.minute % minutes)
    insert = upsert_for(session)
    statement = insert(ProviderCallWindow).values(provider=provider, window_start=window, calls=1)
    taken = await session.scalar(
        statement.on_conflict_do_update(
            index_elements=["provider", "window_start"],
            set_={"calls": ProviderCallWindow.calls + 1},
            where=ProviderCallWindow.calls < per_minute,
        ).returning(ProviderCallWindow.calls)
    )
    if taken is None:
        return (window + timedelta(minutes=minutes) - now).total_seconds()
    if taken == 1:  # first call of a new minute: forget old windows
        await session.execute(
            delete(ProviderCallWindow).where(
                ProviderCallWindow.provider == provider,
                ProviderCallWindow.window_start < window - timedelta(hours=1),
            )
        )
    return 0.0
