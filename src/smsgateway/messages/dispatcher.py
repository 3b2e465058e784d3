"""The dispatcher: takes due messages and hands them to the provider.

One loop per process: claim a batch (see ``queue``), group messages that
share a text into one provider job (see ``delivery.group_jobs``), send the
jobs with up to ``worker_concurrency`` provider calls in flight, and sleep until woken
(NOTIFY on PostgreSQL, the in-process event on SQLite) or until the poll
interval passes. While the provider's circuit is open nothing is claimed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy.exc import DBAPIError, OperationalError

from smsgateway.context import request_id
from smsgateway.db import utcnow
from smsgateway.messages.delivery import Delivery, group_jobs
from smsgateway.messages.queue import Claimed, RetryPolicy, claim_due, next_due_in
from smsgateway.messages.service import NOTIFY_CHANNEL
from smsgateway.providers.health import CircuitBreaker
from smsgateway.runtime import Runtime

log = logging.getLogger(__name__)

_DATABASE_ERRORS = (OperationalError, DBAPIError, OSError, ConnectionError)


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Dispatcher:
    def __init__(self, runtime: Runtime, worker_id: str | None = None) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self.worker_id = (worker_id or default_worker_id())[:64]
        self.retry = RetryPolicy(
            base_seconds=self.settings.retry_base_seconds,
            max_seconds=self.settings.retry_max_seconds,
            max_attempts=self.settings.max_attempts,
        )
        self.breaker = CircuitBreaker(
            runtime.sessionmaker,
            runtime.provider.name,
            threshold=self.settings.circuit_failure_threshold,
            cooldown_seconds=self.settings.circuit_cooldown_seconds,
        )
        runtime.breaker = self.breaker
        self.delivery = Delivery(runtime, self.worker_id, self.retry, self.breaker)
        self._stopping = asyncio.Event()

    # -- the loop -------------------------------------------------------------

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Dispatch until ``stop`` is set; then finish or release what is held.

        Claims are pipelined: as jobs finish, more messages are claimed while the
        rest are still being sent, so the provider call slots never wait for the
        slowest job of a batch. At most ``SMSGW_WORKER_BATCH_SIZE`` messages are
        held at once.
        """
        stop = stop or self._stopping
        listener = asyncio.create_task(self._listen(stop)) if self.runtime.is_postgres else None
        held: dict[asyncio.Task[None], int] = {}  # job -> messages in it
        log.info("dispatcher %s started", self.worker_id)
        try:
            while not stop.is_set():
                self.runtime.wakeup.clear()
                room = self.settings.worker_batch_size - sum(held.values())
                try:
                    claimed = await self._claim_into(held, room, stop) if room > 0 else 0
                    if held and (room <= 0 or claimed >= room):
                        # Full: more may be due as soon as a job makes room.
                        await asyncio.wait(held, return_when=asyncio.FIRST_COMPLETED)
                        continue
                    timeout = await self._idle_timeout()
                except _DATABASE_ERRORS as exc:
                    log.warning("database unavailable, dispatcher waiting: %s", type(exc).__name__)
                    timeout = self.settings.worker_poll_seconds
                await _wait_any(stop, self.runtime.wakeup, seconds=timeout)
        finally:
            if held:  # jobs waiting for a call slot release their messages (stop is set)
                await asyncio.gather(*held, return_exceptions=True)
            if listener is not None:
                listener.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await listener
            log.info("dispatcher %s stopped", self.worker_id)

    def stop(self) -> None:
        self._stopping.set()

    async def run_once(self, stop: asyncio.Event | None = None) -> int:
        """Claim one batch and process it. Returns how many messages were claimed."""
        held: dict[asyncio.Task[None], int] = {}
        claimed = await self._claim_into(held, self.settings.worker_batch_size, stop)
        if held:
            await asyncio.gather(*held)
        return claimed

    async def _claim_into(
        self, held: dict[asyncio.Task[None], int], room: int, stop: asyncio.Event | None
    ) -> int:
        """Claim up to ``room`` due messages and start their jobs; how many were claimed."""
        if not self.breaker.allows():
            return 0
        if self.breaker.state == "half_open":
            # A half-open circuit lets a single message through as the probe.
            if held:
                return 0
            room = 1
        now = utcnow()
        async with self.runtime.sessionmaker() as session, session.begin():
            claimed = await claim_due(
                session,
                worker=self.worker_id,
                now=now,
                lease=timedelta(seconds=self.settings.lease_seconds),
                limit=room,
            )
        if claimed:
            self.delivery.start_pass()
            for job in group_jobs(claimed, self.settings.batch_max_receivers, now):
                task = asyncio.create_task(self._guarded(job, stop))
                held[task] = len(job)
                task.add_done_callback(held.pop)
        return len(claimed)

    async def _idle_timeout(self) -> float:
        poll = self.settings.worker_poll_seconds
        if not self.breaker.allows():
            return max(0.05, min(poll, self.breaker.seconds_until_probe()))
        async with self.runtime.sessionmaker() as session:
            due_in = await next_due_in(session, utcnow())
        return poll if due_in is None else min(poll, due_in + 0.01)

    async def _listen(self, stop: asyncio.Event) -> None:
        """LISTEN for new work; polling covers any notification this misses."""
        while not stop.is_set():
            try:
                async with self.runtime.engine.connect() as connection:
                    raw = await connection.get_raw_connection()
                    driver: Any = raw.driver_connection
                    await driver.add_listener(NOTIFY_CHANNEL, self._notified)
                    try:
                        while not stop.is_set() and not driver.is_closed():
                            await _wait_any(stop, asyncio.Event(), seconds=5.0)
                    finally:
                        with contextlib.suppress(Exception):
                            await driver.remove_listener(NOTIFY_CHANNEL, self._notified)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the poll loop carries on; retry listening later
                log.warning("LISTEN connection lost: %s", type(exc).__name__)
                await _wait_any(stop, asyncio.Event(), seconds=self.settings.worker_poll_seconds)

    def _notified(self, *_args: object) -> None:
        self.runtime.wakeup.set()

    async def _guarded(self, job: list[Claimed], stop: asyncio.Event | None) -> None:
        """One job of the batch; ``Delivery.calls`` bounds the provider calls in flight."""
        request_id.set(job[0].request_id)
        try:
            if stop is not None and stop.is_set():
                await self.delivery.release_unstarted(job)
                return
            await self.delivery.send(job, stop)
        except _DATABASE_ERRORS as exc:
            # The lease runs out and another pass picks the messages up again.
            log.warning("%d message(s) left to their lease: %s", len(job), type(exc).__name__)
        except Exception:
            # A bug must not stop the loop: the lease brings the messages back.
            log.exception("%d message(s) left to their lease after an error", len(job))


async def _wait_any(stop: asyncio.Event, wakeup: asyncio.Event, *, seconds: float) -> None:
    waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wakeup.wait())]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
