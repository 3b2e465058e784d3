"""The one supervised loop every background worker runs on.

A loop repeats a *pass*: one unit of work (claim and handle a batch, poll the
provider once...) that returns how long to wait before the next one. Between
passes it sleeps until that time is up, the ``stop`` event is set, or its
``wakeup`` event is (new work, in process or through LISTEN/NOTIFY). A pass that
raises never ends the loop: the exception is logged with the loop's name and
the next pass comes after a backoff that grows with each failure in a row, as
the loop's ``RetryPolicy`` says. ``stop`` is only looked at between passes, so a
pass always finishes (or releases what it holds) before ``run`` returns.

Each loop keeps a ``Heartbeat``: when its last pass completed, how many passes
completed and how many failed, when the next is due. The loops a process is
running are listed by ``running_loops``: ``/readyz`` answers 503 naming a loop
that is ``stalled`` (stuck in a pass, not running its passes, or failing every
one), metrics show each loop's failures and heartbeat age, and the worker
command exits non-zero on a stall so that its supervisor restarts it.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

from smsgateway.workers.errors import TRANSIENT_DATABASE_ERRORS
from smsgateway.workers.retry import RetryPolicy

log = logging.getLogger(__name__)

# How far a loop's backoff grows after failures in a row (a loop never gives up).
ERROR_BACKOFF_CAP_SECONDS = 30.0
# RetryPolicy doubles per attempt; past this the float power would overflow.
_MAX_BACKOFF_ATTEMPT = 64

# One pass of a loop: the seconds to wait before the next (0: go on at once).
Pass = Callable[[], Awaitable[float]]


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """A loop's vital signs. ``last_pass_at`` is ``time.monotonic()``, None before the first."""

    last_pass_at: float | None = None
    passes: int = 0
    errors: int = 0  # passes that raised; the loop went on after each
    errors_in_a_row: int = 0
    started_at: float | None = None  # when ``run`` began
    pass_started_at: float | None = None  # None between passes
    next_pass_at: float | None = None  # when the next pass is due to start
    ended: bool = False  # ``run`` returned without being stopped

    def stalled(
        self, allowance: float, *, bounded_passes: bool = True, now: float | None = None
    ) -> bool:
        """No progress for ``allowance`` seconds past when it was due.

        ``bounded_passes`` False: a pass may last as long as it likes (one that
        holds a connection to listen on it).
        """
        now = time.monotonic() if now is None else now
        if self.ended:
            return True
        in_pass = self.pass_started_at is not None
        if in_pass and bounded_passes and now - (self.pass_started_at or now) > allowance:
            return True  # stuck in a pass
        if not in_pass and self.next_pass_at is not None and now - self.next_pass_at > allowance:
            return True  # not running its passes
        if self.errors_in_a_row:
            since = self.last_pass_at or self.started_at or now
            return now - since > allowance  # failing every pass
        return False

    def seconds_since_pass(self, now: float | None = None) -> float | None:
        """Seconds since the last completed pass (None: none completed yet)."""
        if self.last_pass_at is None:
            return None
        return (time.monotonic() if now is None else now) - self.last_pass_at


def error_backoff(
    base_seconds: float, cap_seconds: float = ERROR_BACKOFF_CAP_SECONDS
) -> RetryPolicy:
    """The backoff of a loop whose pass failed: from ``base_seconds``, doubling to the cap.

    The cap is never below the base, so a loop that waits long between passes
    anyway does not retry a failed one faster than it would have run it.
    """
    return RetryPolicy(
        base_seconds=base_seconds,
        max_seconds=max(base_seconds, cap_seconds),
        max_attempts=sys.maxsize,
    )


class SupervisedLoop:
    """Runs ``work`` until stopped; see the module docstring.

    ``expected`` are errors the pass may raise in normal operation (the
    provider failing): they are logged as warnings, without a traceback.
    """

    def __init__(
        self,
        name: str,
        work: Pass,
        *,
        backoff: RetryPolicy,
        wakeup: asyncio.Event | None = None,
        expected: tuple[type[Exception], ...] = (),
        bounded_passes: bool = True,
    ) -> None:
        self.name = name
        self.bounded_passes = bounded_passes
        self.work = work
        self.backoff = backoff
        self.wakeup = wakeup
        self.expected = expected
        self._heartbeat = Heartbeat()

    @property
    def heartbeat(self) -> Heartbeat:
        return self._heartbeat

    def stalled(self, allowance: float) -> bool:
        return self._heartbeat.stalled(allowance, bounded_passes=self.bounded_passes)

    async def run(self, stop: asyncio.Event) -> None:
        """Pass after pass until ``stop`` is set; the pass under way always finishes."""
        log.debug("%s started", self.name)
        self._heartbeat = replace(self._heartbeat, started_at=time.monotonic(), ended=False)
        _RUNNING.add(self)
        try:
            while not stop.is_set():
                if self.wakeup is not None:
                    # Cleared before the pass: work that arrives during it wakes the wait.
                    self.wakeup.clear()
                seconds = await self.run_pass()
                self._heartbeat = replace(
                    self._heartbeat, next_pass_at=time.monotonic() + max(seconds, 0.0)
                )
                if seconds > 0:
                    await wait_for_any(stop, self.wakeup, seconds=seconds)
                else:
                    await asyncio.sleep(0)  # never hog the event loop between passes
        finally:
            if stop.is_set():
                _RUNNING.discard(self)
            else:  # cancelled or broken out of: never quietly
                self._heartbeat = replace(self._heartbeat, ended=True)
                log.error("%s ended without being stopped", self.name)
            log.debug("%s stopped", self.name)

    async def run_pass(self) -> float:
        """One pass, supervised: the seconds to wait before the next one."""
        self._heartbeat = replace(self._heartbeat, pass_started_at=time.monotonic())
        try:
            seconds = await self._work_once()
        finally:
            self._heartbeat = replace(self._heartbeat, pass_started_at=None)
        return seconds

    async def _work_once(self) -> float:
        try:
            seconds = await self.work()
        except TRANSIENT_DATABASE_ERRORS as exc:
            delay = self._failed()
            log.warning(
                "database unavailable, %s waiting %.2fs: %s", self.name, delay, type(exc).__name__
            )
            return delay
        except Exception as exc:
            delay = self._failed()
            if isinstance(exc, self.expected):
                log.warning("%s failed, next pass in %.2fs: %s", self.name, delay, exc)
            else:
                log.exception("%s: unexpected error, next pass in %.2fs", self.name, delay)
            return delay
        self._heartbeat = replace(
            self._heartbeat,
            last_pass_at=time.monotonic(),
            passes=self._heartbeat.passes + 1,
            errors_in_a_row=0,
        )
        return seconds

    def _failed(self) -> float:
        beat = self._heartbeat
        self._heartbeat = replace(
            beat, errors=beat.errors + 1, errors_in_a_row=beat.errors_in_a_row + 1
        )
        return self.backoff.delay(min(self._heartbeat.errors_in_a_row, _MAX_BACKOFF_ATTEMPT))


# The loops this process is running (and those that ended without being stopped).
_RUNNING: set[SupervisedLoop] = set()


def running_loops() -> list[SupervisedLoop]:
    """The loops this process runs, by name."""
    return sorted(_RUNNING, key=lambda loop: loop.name)


def stalled_loops(allowance: float) -> list[str]:
    """Names of the running loops that made no progress for ``allowance`` seconds."""
    return [loop.name for loop in running_loops() if loop.stalled(allowance)]


async def wait_for_any(
    stop: asyncio.Event, wakeup: asyncio.Event | None, *, seconds: float
) -> None:
    """Sleep up to ``seconds``, less if ``stop`` or ``wakeup`` is set meanwhile."""
    events = [stop] if wakeup is None else [stop, wakeup]
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
