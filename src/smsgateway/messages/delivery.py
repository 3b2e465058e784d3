"""Sending one provider job — one message, or several with the same text — and recording it.

Every outcome is written with one ``SendAttempt`` row per message, and every
write is guarded by ``status = 'sending' AND lease_owner = <this worker>``:
a worker that lost its lease can never overwrite what the new holder did.

Before a message is sent it is checked in this order:

1. past its validity: it ends ``expired`` (looked up first if it may have gone);
2. *uncertain* (the provider may have it already): looked up by the tag it
   went with, and adopted if found; if not found, it waits until the settle
   time has passed since it became uncertain, because the provider lists an
   SMS only once its job has run;
3. the per-minute call budget: without budget it goes back to the queue for
   the next minute, so no lease is held while waiting.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from smsgateway.callbacks.service import apply_pending_reports
from smsgateway.clients.credits import refund
from smsgateway.db import utcnow
from smsgateway.messages.notify import status_changed
from smsgateway.messages.queue import Claimed
from smsgateway.models.clients import ApiClient
from smsgateway.models.messages import Message, SendAttempt
from smsgateway.models.status import Status
from smsgateway.numbers import mask
from smsgateway.providers.base import (
    JobResult,
    OutgoingJob,
    ProviderError,
    TransientProviderError,
)
from smsgateway.providers.health import CircuitBreaker, take_call
from smsgateway.runtime import Runtime
from smsgateway.workers.retry import RetryPolicy

log = logging.getLogger(__name__)

# Verification SMS carry a one-time code: masked in storage once sent.
CODE_CARRYING_EVENT = "phone.verification"
CODE_PATTERN = re.compile(r"\b\d{4,8}\b")


@dataclass(frozen=True, slots=True)
class _Outcome:
    """What happened to one message of a job, to be stored."""

    status: str
    attempt: str
    values: dict[str, Any]
    error: str | None = None
    status_code: int | None = None
    provider_id: str | None = None
    refund_reason: str | None = None
    notify: bool = False


class Delivery:
    def __init__(
        self, runtime: Runtime, worker_id: str, retry: RetryPolicy, breaker: CircuitBreaker
    ) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self.provider = runtime.provider
        self.worker_id = worker_id
        self.retry = retry
        self.breaker = breaker
        # Provider calls in flight (SMSGW_WORKER_CONCURRENCY): a job holds a slot only
        # from recording its tag to the provider's answer; storing the outcome and the
        # checks before run outside it, so the slots are busy with the provider.
        self.calls = asyncio.Semaphore(runtime.settings.worker.concurrency)
        # receiver -> SMS id per tag, found during the current claim pass only.
        self._receivers_by_tag: dict[str, dict[str, str]] = {}

    async def send(self, job: list[Claimed], stop: asyncio.Event | None = None) -> None:
        """Deliver ``job``: one message, or several sharing text and options.

        A job still waiting for a call slot when ``stop`` is set is released unsent.
        """
        started = utcnow()
        first = job[0]
        if len(job) == 1:
            if first.valid_until is not None and started >= first.valid_until:
                await self._past_validity(first, started)
                return
            if first.uncertain and await self._settle_uncertain(first, started):
                return
        if not await self._spend(job, started):
            return
        tag = first.provider_tag
        async with self.calls:
            if stop is not None and stop.is_set():
                await self.release_unstarted(job)
                return
            if not self.breaker.allows():
                # The circuit opened while this job waited for its turn.
                due = started + timedelta(seconds=self.breaker.seconds_until_probe())
                await self._store(job, started, self._release(due, "circuit_open"))
                return
            job = await self._renew(job, tag)
            if not job:
                return
            outgoing = OutgoingJob(
                text=first.text,
                receivers=[m.to for m in job],
                tag=tag,
                no_stop_clause=first.no_stop_clause,
                validity_minutes=_minutes_left(job, started),
            )
            failure: ProviderError | None = None
            # What was looked up under this tag is stale once it is sent with again.
            self._receivers_by_tag.pop(tag, None)
            try:
                result = await self.provider.send(outgoing)
            except ProviderError as exc:
                failure = exc
            except Exception as exc:
                # A bug or an unexpected answer: the SMS may have gone, so it is uncertain.
                log.exception("unexpected error sending %d message(s)", len(job))
                failure = TransientProviderError(
                    f"unexpected error: {type(exc).__name__}", uncertain=True
                )
        if isinstance(failure, TransientProviderError):
            await self.breaker.failed(failure.reason)
            transient = failure
            await self._store(
                job, started, lambda m: self._retry_outcome(m, transient, tag, started)
            )
            return
        if failure is not None:
            # The provider answered and refused: it is up.
            await self.breaker.succeeded()
            refused = failure
            await self._store(
                job, started, lambda m: self._failed_outcome(m, refused.reason, refused)
            )
            return
        await self.breaker.succeeded()
        await self._store(job, started, lambda m: self._result_outcome(m, result, tag, len(job)))

    # -- checks before sending ---------------------------------------------------

    async def _past_validity(self, message: Claimed, started: datetime) -> None:
        if message.uncertain:
            found = await self._lookup(message, started)
            if found is None:
                return  # the look-up failed and was stored as a retry
            if found:
                await self._store([message], started, lambda m: self._adopted(found))
                return
        outcome = _Outcome(
            Status.EXPIRED.value,
            "expired",
            {
                "status": Status.EXPIRED.value,
                "reason": "validity_exceeded",
                "final_at": started,
                "due_at": None,
            },
            error="validity_exceeded",
            # Uncertain and still not listed: it may have been billed, keep the charge.
            refund_reason=None if message.uncertain else "expired before sending",
            notify=True,
        )
        await self._store([message], started, lambda m: outcome)

    async def _settle_uncertain(self, message: Claimed, started: datetime) -> bool:
        """Adopt or hold an uncertain message. False: it must be sent now."""
        found = await self._lookup(message, started)
        if found is None:
            return True
        if found:
            await self._store([message], started, lambda m: self._adopted(found))
            return True
        since = message.uncertain_since or started
        settled_at = since + timedelta(seconds=self.settings.dispatch.uncertain_settle_seconds)
        if started < settled_at:
            hold = self._release(
                settled_at, "lookup", uncertain_since=since, error="not listed yet"
            )
            await self._store([message], started, hold)
            return True
        return False

    async def _lookup(self, message: Claimed, started: datetime) -> str | None:
        """The provider id the message went out with, "" if not found, None if handled here.

        Ids are always matched by receiver: the tag may be a batch's, whose
        look-up lists every receiver's SMS. Each call to the provider is taken
        from the call budget; without budget the message waits for the next minute.
        """
        tag = message.job_tag or message.provider_tag
        try:
            cached = self._receivers_by_tag.get(tag)
            if cached is None:
                if not await self._spend([message], started):
                    return None
                ids = await self.provider.find_by_tag(tag)
                receivers: dict[str, str] = {}
                for provider_id in ids:
                    if not await self._spend([message], started):
                        return None
                    status = await self.provider.outgoing(provider_id)
                    if status is not None:
                        receivers[_digits(status.receiver)] = provider_id
                # Batch members are looked up side by side: one round of calls serves all.
                cached = receivers
                self._receivers_by_tag[tag] = cached
            return cached.get(_digits(message.to), "")
        except ProviderError as exc:
            await self.breaker.failed(exc.reason)
            lookup_failure = exc
            await self._store(
                [message],
                started,
                lambda m: self._retry_outcome(m, lookup_failure, tag, started, uncertain=True),
            )
            return None

    def start_pass(self) -> None:
        """Forget look-ups: they serve the members of one batch within one claim pass.

        Kept longer, a "not listed yet" could outlive the settle wait it caused.
        """
        self._receivers_by_tag.clear()

    async def _spend(self, job: list[Claimed], started: datetime) -> bool:
        """Take one provider call from the budget, or put ``job`` back until the next minute."""
        async with self.runtime.sessionmaker() as session, session.begin():
            wait = await take_call(
                session, self.provider.name, self.settings.provider.calls_per_minute
            )
        if wait > 0:
            await self._store(
                job, started, self._release(utcnow() + timedelta(seconds=wait), "throttled")
            )
            return False
        return True

    async def _renew(self, job: list[Claimed], tag: str) -> list[Claimed]:
        """Extend the lease of ``job`` and record its tag, just before sending.

        A job may have waited its turn long enough for its lease to run out
        and another worker to take it: only messages still ours are sent. The
        tag is stored first, so that if this worker dies during the send the
        next holder looks each message up by the tag it really went with.
        """
        lease = timedelta(seconds=self.settings.worker.lease_seconds)
        async with self.runtime.sessionmaker() as session, session.begin():
            kept = set(
                (
                    await session.scalars(
                        update(Message)
                        .where(
                            Message.id.in_([m.id for m in job]),
                            Message.status == Status.SENDING.value,
                            Message.lease_owner == self.worker_id,
                        )
                        .values(lease_until=utcnow() + lease, job_tag=tag)
                        .returning(Message.id)
                        .execution_options(synchronize_session=False)
                    )
                ).all()
            )
        if len(kept) < len(job):
            log.warning("%d message(s) lost their lease before sending", len(job) - len(kept))
        return [m for m in job if m.id in kept]

    # -- outcomes ----------------------------------------------------------------

    def _result_outcome(self, message: Claimed, result: JobResult, tag: str, size: int) -> _Outcome:
        provider_id = result.ids.get(message.to)
        if provider_id is None and size == 1 and len(result.ids) == 1:
            # A provider may echo the receiver in another format (00 prefix).
            provider_id = next(iter(result.ids.values()))
        if provider_id is not None:
            return self._submitted(provider_id, "accepted", tag)
        reason = (
            "invalid_receiver"
            if message.to in result.invalid_receivers
            else ("provider_returned_no_id")
        )
        return self._failed_outcome(message, reason, None)

    def _submitted(self, provider_id: str, attempt: str, tag: str | None) -> _Outcome:
        values: dict[str, Any] = {
            "status": Status.SUBMITTED.value,
            "provider": self.provider.name,
            "provider_id": provider_id,
            "submitted_at": utcnow(),
            "uncertain": False,
            "uncertain_since": None,
            "last_error": None,
        }
        if tag is not None:
            values["job_tag"] = tag
        return _Outcome(
            Status.SUBMITTED.value, attempt, values, provider_id=provider_id, notify=True
        )

    def _adopted(self, provider_id: str) -> _Outcome:
        return self._submitted(provider_id, "adopted", None)

    def _failed_outcome(
        self,
        message: Claimed,
        reason: str,
        exc: ProviderError | None,
        *,
        maybe_billed: bool = False,
    ) -> _Outcome:
        now = utcnow()
        return _Outcome(
            Status.FAILED.value,
            "permanent",
            {
                "status": Status.FAILED.value,
                "reason": reason[:255],
                "final_at": now,
                "due_at": None,
            },
            error=reason,
            status_code=exc.status_code if exc else None,
            # The provider never accepted it: nothing was billed.
            refund_reason=None if maybe_billed else f"not sent: {reason}",
            notify=True,
        )

    def _retry_outcome(
        self,
        message: Claimed,
        exc: TransientProviderError | ProviderError,
        tag: str,
        now: datetime,
        *,
        uncertain: bool | None = None,
    ) -> _Outcome:
        is_uncertain = (
            uncertain
            if uncertain is not None
            else isinstance(exc, TransientProviderError) and exc.uncertain
        )
        if self.retry.exhausted(message.attempts):
            return self._failed_outcome(
                message,
                f"provider_unavailable: {exc.reason}",
                exc,
                # An SMS the provider may have taken may also have been billed.
                maybe_billed=is_uncertain or message.uncertain,
            )
        retry_after = exc.retry_after if isinstance(exc, TransientProviderError) else None
        delay = self.retry.delay(message.attempts, retry_after)
        values: dict[str, Any] = {
            "status": Status.QUEUED.value,
            "due_at": now + timedelta(seconds=delay),
            "uncertain": is_uncertain,
            # A send that may have reached the provider restarts the settle time: the
            # provider lists it only once its job has run. A failed look-up does not.
            "uncertain_since": (
                None
                if not is_uncertain
                else now
                if uncertain is None
                else (message.uncertain_since or now)
            ),
            "last_error": exc.reason[:255],
        }
        if is_uncertain:
            values["job_tag"] = message.job_tag if uncertain is not None else tag
        return _Outcome(
            Status.QUEUED.value, "transient", values, error=exc.reason, status_code=exc.status_code
        )

    def _release(
        self, due: datetime, attempt: str, *, error: str | None = None, **extra: Any
    ) -> Any:
        """Back to the queue until ``due`` without spending an attempt."""

        def outcome(message: Claimed) -> _Outcome:
            values = {
                "status": Status.QUEUED.value,
                "due_at": due,
                "attempts": message.attempts - 1,
                **extra,
            }
            return _Outcome(Status.QUEUED.value, attempt, values, error=error)

        return outcome

    async def release_unstarted(self, job: list[Claimed]) -> None:
        """Give back messages claimed but not started (the worker is stopping)."""
        await self._store(job, utcnow(), self._release(utcnow(), "released"))

    # -- storing -----------------------------------------------------------------

    async def _store(self, job: list[Claimed], started: datetime, decide: Any) -> None:
        """Write each message's outcome, its attempt row and side effects, in one transaction."""
        outcomes: list[_Outcome] = [decide(message) for message in job]
        async with self.runtime.sessionmaker() as session, session.begin():
            for message, outcome in zip(job, outcomes, strict=True):
                values = outcome.values
                if outcome.status != Status.QUEUED and message.event_type == CODE_CARRYING_EVENT:
                    # Once it has left, the code it carried is not kept readable.
                    values = {**values, "text": CODE_PATTERN.sub("******", message.text)}
                stored = await self._finish(session, message, values)
                self._attempt(session, message, started, outcome)
                if not stored:
                    continue
                if outcome.provider_id is not None:
                    await apply_pending_reports(session, message.id, outcome.provider_id)
                if outcome.refund_reason:
                    await refund(session, message.id, outcome.refund_reason)
                if outcome.notify and await self._has_webhook(session, message.client_id):
                    await status_changed(session, message.id)
        for message, outcome in zip(job, outcomes, strict=True):
            if outcome.status != Status.QUEUED:
                log.info("message %s to %s: %s", message.id, mask(message.to), outcome.attempt)
            elif outcome.attempt == "transient":
                log.info("message %s retry later: %s", message.id, outcome.error)

    async def _finish(
        self, session: AsyncSession, message: Claimed, values: dict[str, Any]
    ) -> bool:
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

    async def _has_webhook(self, session: AsyncSession, client_id: str) -> bool:
        """Whether the client takes webhooks (its address cached a few seconds)."""
        cache = self.runtime.client_cache
        url = cache.webhook_url(client_id)
        if url is None:
            url = await session.scalar(
                select(ApiClient.webhook_url).where(ApiClient.id == client_id)
            )
            cache.put_webhook_url(client_id, url)
        return bool(url)

    def _attempt(
        self, session: AsyncSession, message: Claimed, started: datetime, outcome: _Outcome
    ) -> None:
        session.add(
            SendAttempt(
                message_id=message.id,
                attempt=message.attempts,
                worker=self.worker_id,
                started_at=started,
                finished_at=utcnow(),
                outcome=outcome.attempt,
                status_code=outcome.status_code,
                error=outcome.error[:255] if outcome.error else None,
                provider_id=outcome.provider_id,
            )
        )


def group_jobs(claimed: list[Claimed], max_receivers: int, now: datetime) -> list[list[Claimed]]:
    """Messages that can share one provider job: same text and options, distinct numbers.

    Uncertain messages and those past their validity go alone: each is looked
    up or expired on its own.
    """
    jobs: list[list[Claimed]] = []
    open_jobs: dict[tuple[str, bool], list[Claimed]] = {}
    for message in claimed:
        if message.uncertain or (message.valid_until is not None and message.valid_until <= now):
            jobs.append([message])
            continue
        key = (message.text, message.no_stop_clause)
        current = open_jobs.get(key)
        if (
            current is None
            or len(current) >= max_receivers
            or any(m.to == message.to for m in current)
        ):
            current = []
            open_jobs[key] = current
            jobs.append(current)
        current.append(message)
    return jobs


def _minutes_left(job: list[Claimed], now: datetime) -> int | None:
    ends = [m.valid_until for m in job if m.valid_until is not None]
    if not ends:
        return None
    return max(1, math.ceil((min(ends) - now).total_seconds() / 60))


def _digits(number: str) -> str:
    """A number without its international prefix, to compare ``+33…`` with ``0033…``."""
    return number.strip().lstrip("+0")
