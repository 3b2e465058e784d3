"""The dispatcher: takes due messages and hands them to the provider.

One loop per process: claim a batch (see ``queue``), send each message
concurrently up to ``worker_concurrency``, record the outcome with one
``SendAttempt`` row, and sleep until woken (NOTIFY on PostgreSQL, the
in-process event on SQLite) or until the poll interval passes.

Every write that ends an attempt is guarded by ``status = 'sending' AND
lease_owner = <this worker>``: a worker that lost its lease can never
overwrite what the new holder did.
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

from sqlalchemy import update
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from smsgateway.callbacks.service import apply_pending_reports
from smsgateway.clients.credits import refund
from smsgateway.db import utcnow
from smsgateway.messages.models import Message, SendAttempt
from smsgateway.messages.notify import status_changed
from smsgateway.messages.queue import Claimed, RetryPolicy, claim_due, next_due_in
from smsgateway.messages.service import NOTIFY_CHANNEL
from smsgateway.messages.states import Status
from smsgateway.phones.numbers import mask
from smsgateway.providers.base import (
    JobResult,
    OutgoingJob,
    PermanentProviderError,
    ProviderError,
    TransientProviderError,
)
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
        self._stopping = asyncio.Event()
        self._limit = asyncio.Semaphore(self.settings.worker_concurrency)

    # -- the loop -------------------------------------------------------------

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Dispatch until ``stop`` is set; then finish or release what is held."""
        stop = stop or self._stopping
        listener = asyncio.create_task(self._listen(stop)) if self.runtime.is_postgres else None
        log.info("dispatcher %s started", self.worker_id)
        try:
            while not stop.is_set():
                self.runtime.wakeup.clear()
                try:
                    handled = await self.run_once(stop)
                    if handled >= self.settings.worker_batch_size:
                        continue
                    timeout = await self._idle_timeout()
                except _DATABASE_ERRORS as exc:
                    log.warning("database unavailable, dispatcher waiting: %s", type(exc).__name__)
                    timeout = self.settings.worker_poll_seconds
                await _wait_any(stop, self.runtime.wakeup, seconds=timeout)
        finally:
            if listener is not None:
                listener.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await listener
            log.info("dispatcher %s stopped", self.worker_id)

    def stop(self) -> None:
        self._stopping.set()

    async def run_once(self, stop: asyncio.Event | None = None) -> int:
        """Claim one batch and process it. Returns how many messages were claimed."""
        now = utcnow()
        async with self.runtime.sessionmaker() as session, session.begin():
            claimed = await claim_due(
                session,
                worker=self.worker_id,
                now=now,
                lease=timedelta(seconds=self.settings.lease_seconds),
                limit=self.settings.worker_batch_size,
            )
        if claimed:
            await asyncio.gather(*(self._guarded(message, stop) for message in claimed))
        return len(claimed)

    async def _idle_timeout(self) -> float:
        async with self.runtime.sessionmaker() as session:
            due_in = await next_due_in(session, utcnow())
        poll = self.settings.worker_poll_seconds
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

    # -- one message ----------------------------------------------------------

    async def _guarded(self, message: Claimed, stop: asyncio.Event | None) -> None:
        async with self._limit:
            try:
                if stop is not None and stop.is_set():
                    await self._release(message)
                    return
                await self._deliver(message)
            except _DATABASE_ERRORS as exc:
                # The lease runs out and another pass picks the message up again.
                log.warning("message %s left to its lease: %s", message.id, type(exc).__name__)

    async def _deliver(self, message: Claimed) -> None:
        provider = self.runtime.provider
        started = utcnow()
        if message.uncertain:
            try:
                found = await provider.find_by_tag(message.provider_tag)
            except ProviderError as exc:
                await self._retry_later(message, started, exc, uncertain=True)
                return
            if found:
                await self._submitted(message, started, found[0], outcome="adopted")
                return
            # Not listed yet is not proof it was not sent: the provider lists an SMS
            # only once its job has run. Resend only after the settle time.
            since = message.uncertain_since or started
            settled_at = since + timedelta(seconds=self.settings.uncertain_settle_seconds)
            if started < settled_at:
                await self._await_settle(message, started, settled_at)
                return
        job = OutgoingJob(
            text=message.text,
            receivers=[message.to],
            tag=message.provider_tag,
            no_stop_clause=message.no_stop_clause,
            validity_minutes=None,
        )
        try:
            result = await provider.send(job)
        except TransientProviderError as exc:
            await self._retry_later(message, started, exc, uncertain=exc.uncertain)
            return
        except PermanentProviderError as exc:
            await self._fail(message, started, exc.reason, status_code=exc.status_code)
            return
        except Exception as exc:
            # A bug or an unexpected answer: the SMS may have gone, so treat as uncertain.
            log.exception("unexpected error sending message %s", message.id)
            error = TransientProviderError(
                f"unexpected error: {type(exc).__name__}", uncertain=True
            )
            await self._retry_later(message, started, error, uncertain=True)
            return
        provider_id = _id_for(result, message.to)
        if provider_id is not None:
            await self._submitted(message, started, provider_id, outcome="accepted")
        elif message.to in result.invalid_receivers:
            await self._fail(message, started, "invalid_receiver")
        else:
            await self._fail(message, started, "provider_returned_no_id")

    async def _submitted(
        self, message: Claimed, started: Any, provider_id: str, *, outcome: str
    ) -> None:
        now = utcnow()
        async with self.runtime.sessionmaker() as session, session.begin():
            updated = await self._finish(
                session,
                message,
                status=Status.SUBMITTED.value,
                provider=self.runtime.provider.name,
                provider_id=provider_id,
                submitted_at=now,
                uncertain=False,
                last_error=None,
            )
            self._attempt(session, message, started, outcome, provider_id=provider_id)
            if updated:
                await apply_pending_reports(session, message.id, provider_id)
                await status_changed(session, message.id)
        log.info("message %s submitted to %s (%s)", message.id, mask(message.to), outcome)

    async def _fail(
        self,
        message: Claimed,
        started: Any,
        reason: str,
        *,
        status_code: int | None = None,
        maybe_billed: bool = False,
    ) -> None:
        now = utcnow()
        async with self.runtime.sessionmaker() as session, session.begin():
            updated = await self._finish(
                session,
                message,
                status=Status.FAILED.value,
                reason=reason[:255],
                final_at=now,
                due_at=None,
            )
            self._attempt(
                session, message, started, "permanent", error=reason, status_code=status_code
            )
            if updated and not maybe_billed:
                # The provider never accepted it: nothing was billed.
                await refund(session, message.id, f"not sent: {reason}")
                await status_changed(session, message.id)
        log.warning("message %s failed: %s", message.id, reason)

    async def _await_settle(self, message: Claimed, started: Any, settled_at: Any) -> None:
        """Look the message up again at ``settled_at``; waiting is not an attempt."""
        async with self.runtime.sessionmaker() as session, session.begin():
            await self._finish(
                session,
                message,
                status=Status.QUEUED.value,
                due_at=settled_at,
                attempts=message.attempts - 1,
                uncertain_since=message.uncertain_since or started,
            )
            self._attempt(session, message, started, "lookup", error="not listed yet")

    async def _retry_later(
        self, message: Claimed, started: Any, exc: ProviderError, *, uncertain: bool
    ) -> None:
        retry_after = exc.retry_after if isinstance(exc, TransientProviderError) else None
        if self.retry.exhausted(message.attempts):
            await self._fail(
                message,
                started,
                f"provider_unavailable: {exc.reason}",
                status_code=exc.status_code,
                # An SMS the provider may have taken may also have been billed.
                maybe_billed=uncertain or message.uncertain,
            )
            return
        delay = self.retry.delay(message.attempts, retry_after)
        now = utcnow()
        async with self.runtime.sessionmaker() as session, session.begin():
            await self._finish(
                session,
                message,
                status=Status.QUEUED.value,
                due_at=now + timedelta(seconds=delay),
                uncertain=uncertain,
                uncertain_since=(message.uncertain_since or now) if uncertain else None,
                last_error=exc.reason[:255],
            )
            self._attempt(
                session,
                message,
                started,
                "transient",
                error=exc.reason,
                status_code=exc.status_code,
            )
        log.info("message %s retry in %.1fs after: %s", message.id, delay, exc.reason)

    async def _release(self, message: Claimed) -> None:
        """Give back a message we claimed but did not start (shutting down)."""
        async with self.runtime.sessionmaker() as session, session.begin():
            await self._finish(
                session,
                message,
                status=Status.QUEUED.value,
                due_at=utcnow(),
                attempts=message.attempts - 1,
            )

    async def _finish(self, session: AsyncSession, message: Claimed, **values: Any) -> bool:
        result = await session.execute(
            update(Message)
            .where(
                Message.id == message.id,
                Message.status == Status.SENDING.value,
                Message.lease_owner == self.worker_id,
            )
            .values(lease_owner=None, lease_until=None, updated_at=utcnow(), **values)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount == 0:  # type: ignore[attr-defined]
            log.warning("message %s: lease lost before the outcome was stored", message.id)
            return False
        return True

    def _attempt(
        self,
        session: AsyncSession,
        message: Claimed,
        started: Any,
        outcome: str,
        *,
        provider_id: str | None = None,
        error: str | None = None,
        status_code: int | None = None,
    ) -> None:
        session.add(
            SendAttempt(
                message_id=message.id,
                attempt=message.attempts,
                worker=self.worker_id,
                started_at=started,
                finished_at=utcnow(),
                outcome=outcome,
                status_code=status_code,
                error=error[:255] if error else None,
                provider_id=provider_id,
            )
        )


def _id_for(result: JobResult, to: str) -> str | None:
    if to in result.ids:
        return result.ids[to]
    # A provider may echo the receiver in another format (00 prefix): with one
    # receiver per job, its only id is ours.
    if len(result.ids) == 1:
        return next(iter(result.ids.values()))
    return None


async def _wait_any(stop: asyncio.Event, wakeup: asyncio.Event, *, seconds: float) -> None:
    waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wakeup.wait())]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
