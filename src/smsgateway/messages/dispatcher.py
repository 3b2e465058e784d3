"""The dispatcher: takes due messages and hands them to the provider.

One loop per process: claim a batch (see ``queue``), group messages that
share a text into one provider job (see ``delivery.group_jobs``), send the
jobs with up to ``SMSGW_WORKER_CONCURRENCY`` provider calls in flight, and sleep until woken
(NOTIFY on PostgreSQL, the in-process event on SQLite) or until the poll
interval passes. While the provider's circuit is open nothing is claimed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

from smsgateway.context import request_id
from smsgateway.db import utcnow
from smsgateway.messages.delivery import Delivery
from smsgateway.messages.lifecycle import claim
from smsgateway.messages.queue import Claimed, group_jobs, next_due_in
from smsgateway.messages.service import NOTIFY_CHANNEL
from smsgateway.providers.health import CircuitBreaker
from smsgateway.runtime import Runtime
from smsgateway.workers.claim import default_worker_id
from smsgateway.workers.errors import TRANSIENT_DATABASE_ERRORS
from smsgateway.workers.listen import Listener
from smsgateway.workers.loop import SupervisedLoop, error_backoff
from smsgateway.workers.retry import RetryPolicy

log = logging.getLogger(__name__)


class Dispatcher:
    def __init__(self, runtime: Runtime, worker_id: str | None = None) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self.worker_id = (worker_id or default_worker_id())[:64]
        self.retry = RetryPolicy(
            base_seconds=self.settings.dispatch.retry_base_seconds,
            max_seconds=self.settings.dispatch.retry_max_seconds,
            max_attempts=self.settings.dispatch.max_attempts,
        )
        self.breaker = CircuitBreaker(
            runtime.sessionmaker,
            runtime.provider.name,
            threshold=self.settings.provider.circuit_failure_threshold,
            cooldown_seconds=self.settings.provider.circuit_cooldown_seconds,
        )
        runtime.breaker = self.breaker
        self.delivery = Delivery(runtime, self.worker_id, self.retry, self.breaker)
        self._stopping = asyncio.Event()
        poll = self.settings.worker.poll_seconds
        self.loop = SupervisedLoop(
            "dispatcher", self._pass, backoff=error_backoff(poll), wakeup=runtime.wakeup
        )
        self.listener = Listener(runtime.engine, NOTIFY_CHANNEL, runtime.wakeup, retry_seconds=poll)
        # Jobs of the running loop -> messages in each; ``_jobs_stop`` is the loop's stop.
        self._held: dict[asyncio.Task[None], int] = {}
        self._jobs_stop: asyncio.Event | None = None

    # -- the loop -------------------------------------------------------------

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Dispatch until ``stop`` is set; then finish or release what is held.

        Claims are pipelined: as jobs finish, more messages are claimed while the
        rest are still being sent, so the provider call slots never wait for the
        slowest job of a batch. At most ``SMSGW_WORKER_BATCH_SIZE`` messages are
        held at once.
        """
        stop = stop or self._stopping
        self._jobs_stop = stop
        listener = (
            asyncio.create_task(self.listener.run(stop)) if self.runtime.is_postgres else None
        )
        log.info("dispatcher %s started", self.worker_id)
        try:
            await self.loop.run(stop)
        finally:
            if self._held:  # jobs waiting for a call slot release their messages (stop is set)
                await asyncio.gather(*self._held, return_exceptions=True)
            if listener is not None:
                listener.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await listener
            log.info("dispatcher %s stopped", self.worker_id)

    async def _pass(self) -> float:
        """Claim into the free room; the seconds until more may be due."""
        held = self._held
        room = self.settings.worker.batch_size - sum(held.values())
        claimed = await self._claim_into(held, room, self._jobs_stop) if room > 0 else 0
        if held and (room <= 0 or claimed >= room):
            # Full: more may be due as soon as a job makes room.
            await asyncio.wait(held, return_when=asyncio.FIRST_COMPLETED)
            return 0.0
        return await self._idle_timeout()

    def stop(self) -> None:
        self._stopping.set()

    async def run_once(self, stop: asyncio.Event | None = None) -> int:
        """Claim one batch and process it. Returns how many messages were claimed."""
        held: dict[asyncio.Task[None], int] = {}
        claimed = await self._claim_into(held, self.settings.worker.batch_size, stop)
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
            claimed = await claim(
                session,
                worker=self.worker_id,
                now=now,
                lease=timedelta(seconds=self.settings.worker.lease_seconds),
                limit=room,
            )
        if claimed:
            for job in group_jobs(claimed, self.settings.dispatch.batch_max_receivers, now):
                task = asyncio.create_task(self._guarded(job, stop))
                held[task] = len(job)
                task.add_done_callback(held.pop)
        return len(claimed)

    async def _idle_timeout(self) -> float:
        poll = self.settings.worker.poll_seconds
        if not self.breaker.allows():
            return max(0.05, min(poll, self.breaker.seconds_until_probe()))
        async with self.runtime.sessionmaker() as session:
            due_in = await next_due_in(session, utcnow())
        return poll if due_in is None else min(poll, due_in + 0.01)

    async def _guarded(self, job: list[Claimed], stop: asyncio.Event | None) -> None:
        """One job of the batch; ``Delivery.calls`` bounds the provider calls in flight."""
        request_id.set(job[0].request_id)
        try:
            if stop is not None and stop.is_set():
                await self.delivery.release_unstarted(job)
                return
            await self.delivery.send(job, stop)
        except TRANSIENT_DATABASE_ERRORS as exc:
            # The lease runs out and another pass picks the messages up again.
            log.warning("%d message(s) left to their lease: %s", len(job), type(exc).__name__)
        except Exception:
            # A bug must not stop the loop: the lease brings the messages back.
            log.exception("%d message(s) left to their lease after an error", len(job))
