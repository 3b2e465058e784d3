"""Sending one provider job — one message, or several with the same text — and recording it.

Every outcome is written with one ``SendAttempt`` row per message, and every
write is guarded by ``status = 'sending' AND lease_owner = <this worker>``:
a worker that lost its lease can never overwrite what the new holder did.

Before a message is sent it is checked in this order:

1. past its validity: it ends ``expired`` (looked up first if it may have gone);
2. *uncertain* (the provider may have it already): looked up
   (``messages.lookups``) and adopted if found, held while it may still
   show, and sent again only once it is proven absent;
3. the per-minute call budget: without budget it goes back to the queue for
   the next minute, so no lease is held while waiting.
"""

from __future__ import annotations

import asyncio
import logging
import re
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from smsgateway.db import utcnow
from smsgateway.messages import outcomes
from smsgateway.messages.lifecycle import finish_attempt
from smsgateway.messages.lookups import Lookups, Verdict
from smsgateway.messages.outcomes import Decide, Outcome
from smsgateway.messages.queue import Claimed, minutes_left
from smsgateway.messages.reports import (
    apply_pending_reports,
    lock_job,
    take_from_wrong_holders,
)
from smsgateway.models.clients import ApiClient
from smsgateway.models.messages import Message, SendAttempt
from smsgateway.models.status import Status
from smsgateway.numbers import mask
from smsgateway.providers.base import (
    JobResult,
    OutgoingJob,
    ProviderError,
    TransientProviderError,
    deadline,
)
from smsgateway.providers.health import CircuitBreaker, take_call
from smsgateway.runtime import Runtime
from smsgateway.workers.retry import RetryPolicy

log = logging.getLogger(__name__)

# Verification SMS carry a one-time code: masked in storage once sent.
CODE_CARRYING_EVENT = "phone.verification"
CODE_PATTERN = re.compile(r"\b\d{4,8}\b")


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
        self.lookups = Lookups(
            self.provider,
            runtime.sessionmaker,
            self._spend_lookup,
            self.settings,
        )

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
            sent = await self._call(job, tag, started, stop)
        if sent is None:
            return
        job, answer = sent
        # The last moment the request could have reached the provider: where an
        # uncertain message's settle time starts.
        ended = utcnow()
        if isinstance(answer, TransientProviderError):
            await self.breaker.failed(answer.reason)
            transient = answer
            await self._store(
                job,
                started,
                lambda m: outcomes.retry(m, transient, policy=self.retry, tag=tag, now=ended),
            )
            return
        # The provider answered, even to refuse: it is up.
        await self.breaker.succeeded()
        if isinstance(answer, ProviderError):
            refused = answer
            await self._store(job, started, lambda m: outcomes.failed(refused.reason, refused))
            return
        result, name, size, policy = answer, self.provider.name, len(job), self.retry
        await self._store(
            job,
            started,
            lambda m: outcomes.from_result(
                m, result, provider=name, tag=tag, size=size, policy=policy, now=ended
            ),
        )

    async def _call(
        self, job: list[Claimed], tag: str, started: datetime, stop: asyncio.Event | None
    ) -> tuple[list[Claimed], JobResult | ProviderError] | None:
        """Send ``job`` from a call slot: what is still ours and the answer; None if not sent."""
        if stop is not None and stop.is_set():
            await self.release_unstarted(job)
            return None
        if not self.breaker.allows():
            # The circuit opened while this job waited for its turn.
            due = started + timedelta(seconds=self.breaker.seconds_until_probe())
            await self._store(job, started, outcomes.release(due, "circuit_open"))
            return None
        # Strictly inside the lease the renewal gives: past it, nothing leaves.
        until = asyncio.get_running_loop().time() + self._call_budget()
        job = await self._renew(job, tag)
        if not job:
            return None
        outgoing = OutgoingJob(
            text=job[0].text,
            receivers=[m.to for m in job],
            tag=tag,
            no_stop_clause=job[0].no_stop_clause,
            validity_minutes=minutes_left(job, started),
        )
        # What was looked up under this tag is stale once it is sent with again.
        self.lookups.forget(tag)
        try:
            with deadline(until):
                async with asyncio.timeout_at(until):
                    return job, await self.provider.send(outgoing)
        except TimeoutError:
            return job, TransientProviderError("no answer within the send deadline", uncertain=True)
        except ProviderError as exc:
            return job, exc
        except Exception as exc:
            # A bug or an unexpected answer: the SMS may have gone, so it is uncertain.
            log.exception("unexpected error sending %d message(s)", len(job))
            return job, TransientProviderError(
                f"unexpected error: {type(exc).__name__}", uncertain=True
            )

    # -- checks before sending ---------------------------------------------------

    async def _past_validity(self, message: Claimed, started: datetime) -> None:
        """End a message past its validity; an uncertain one is looked up first.

        An uncertain message is looked up until one settle time past its
        validity; then it ends ``expired`` with its charge kept, since it may
        have gone. That bounds how long any message can stay uncertain.
        """
        assert message.valid_until is not None
        give_up_at = message.valid_until + timedelta(
            seconds=self.settings.dispatch.uncertain_settle_seconds
        )
        looked_up = message.uncertain and started < give_up_at
        if looked_up and await self._settle_uncertain(message, started, hold_at_most=give_up_at):
            return
        sent = message.uncertain and started >= give_up_at
        await self._store([message], started, lambda m: outcomes.expired(m, started, sent))

    async def _settle_uncertain(
        self, message: Claimed, started: datetime, hold_at_most: datetime | None = None
    ) -> bool:
        """Adopt or hold an uncertain message (a hold ends by ``hold_at_most``).

        False: it is proven absent, and the caller sends or expires it.
        """
        verdict = await self._lookup(message, started)
        if verdict is None:
            return True
        if verdict.provider_id is not None:
            found = verdict.provider_id
            await self._store([message], started, lambda m: self._adopted(found))
            return True
        if verdict.absent:
            return False
        assert verdict.until is not None
        until = verdict.until if hold_at_most is None else min(verdict.until, hold_at_most)
        hold = outcomes.release(until, "lookup", error=verdict.reason)
        await self._store([message], started, hold)
        return True

    async def _lookup(self, message: Claimed, started: datetime) -> Verdict | None:
        """What the provider has of ``message``; None when the look-up failed (stored)."""
        try:
            return await self.lookups.find(message, started)
        except ProviderError as exc:
            await self.breaker.failed(exc.reason)
            lookup_failure = exc
            tag = message.job_tag or message.provider_tag
            await self._store(
                [message],
                started,
                lambda m: outcomes.retry(
                    m, lookup_failure, policy=self.retry, tag=tag, now=started, lookup=True
                ),
            )
            return None

    async def _spend_lookup(self, now: datetime | None = None) -> float:
        """One call from the look-up share of the budget, and from the budget itself.

        0 when the call may go, else the seconds to wait (nothing taken).
        """
        now = now or utcnow()
        per_minute = self.settings.provider.calls_per_minute
        if per_minute <= 0:
            return 0.0
        # Under one call a minute, the share is counted over a window of minutes.
        share = per_minute * self.settings.provider.lookup_share
        minutes = next(
            (m for m in (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30, 60) if share * m >= 1), 60
        )
        async with self.runtime.sessionmaker() as session:
            wait = await take_call(
                session,
                f"{self.provider.name}:lookup",
                max(1, int(share * minutes)),
                now,
                minutes=minutes,
            )
            if wait == 0:
                wait = await take_call(session, self.provider.name, per_minute, now)
            if wait > 0:
                await session.rollback()
            else:
                await session.commit()
        return wait

    async def _spend(self, job: list[Claimed], started: datetime) -> bool:
        """Take one provider call from the budget, or put ``job`` back until the next minute."""
        async with self.runtime.sessionmaker() as session, session.begin():
            wait = await take_call(
                session, self.provider.name, self.settings.provider.calls_per_minute
            )
        if wait > 0:
            await self._store(
                job, started, outcomes.release(utcnow() + timedelta(seconds=wait), "throttled")
            )
            return False
        return True

    async def _renew(self, job: list[Claimed], tag: str) -> list[Claimed]:
        """Extend the lease of ``job`` and record its tag, just before sending.

        A job may have waited its turn long enough for its lease to run out
        and another worker to take it: only messages still ours are sent. The
        tag is stored first, so that if this worker dies during the send the
        next holder looks each message up by the tag it really went with.

        A message cancelled or blocked since its claim (``settle_to``) is not
        sent: it goes back, and ``lifecycle`` ends it there. Nothing has it:
        it is sent for the first time, or it was looked up and not found.
        """
        lease = timedelta(seconds=self.settings.worker.lease_seconds)
        async with self.runtime.sessionmaker() as session, session.begin():
            rows = (
                await session.execute(
                    update(Message)
                    .where(
                        Message.id.in_([m.id for m in job]),
                        Message.status == Status.SENDING.value,
                        Message.lease_owner == self.worker_id,
                    )
                    .values(lease_until=utcnow() + lease, job_tag=tag)
                    .returning(Message.id, Message.settle_to)
                    .execution_options(synchronize_session=False)
                )
            ).all()
        kept = {row.id for row in rows if row.settle_to is None}
        settled_ids = {row.id for row in rows if row.settle_to is not None}
        settled = [m for m in job if m.id in settled_ids]
        if len(rows) < len(job):
            log.warning("%d message(s) lost their lease before sending", len(job) - len(rows))
        if settled:
            now = utcnow()
            unsent = outcomes.release(now, "settled", uncertain=False, uncertain_since=None)
            await self._store(settled, now, unsent)
        return [m for m in job if m.id in kept]

    def _call_budget(self) -> float:
        """Seconds a send may take, clock resync included: half the lease (the other
        half is the renewal's margin; a take-over counts from the lease's end)."""
        return self.settings.worker.lease_seconds / 2

    def _adopted(self, provider_id: str) -> Outcome:
        return outcomes.submitted(self.provider.name, provider_id, "adopted", None)

    async def release_unstarted(self, job: list[Claimed]) -> None:
        """Give back messages claimed but not started (the worker is stopping)."""
        await self._store(job, utcnow(), outcomes.release(utcnow(), "released"))

    # -- storing -----------------------------------------------------------------

    async def _store(self, job: list[Claimed], started: datetime, decide: Decide) -> None:
        """Write each message's outcome, its attempt row and side effects, in one transaction."""
        decided: list[Outcome] = [decide(message) for message in job]
        async with self.runtime.sessionmaker() as session, session.begin():
            identified: list[tuple[Claimed, str]] = []
            if any(o.provider_id for o in decided):
                # Before any row is written (reports take it first too): see reports.lock_job.
                await lock_job(session, _job_tag(job, decided))
            for message, outcome in zip(job, decided, strict=True):
                values = outcome.values
                if outcome.status != Status.QUEUED and message.event_type == CODE_CARRYING_EVENT:
                    # Once it has left, the code it carried is not kept readable.
                    values = {**values, "text": CODE_PATTERN.sub("******", message.text)}
                stored = await finish_attempt(
                    session,
                    message.id,
                    worker=self.worker_id,
                    to=outcome.status,
                    values=values,
                    refund_reason=outcome.refund_reason,
                    notify=outcome.notify and await self._has_webhook(session, message.client_id),
                )
                self._attempt(session, message, started, outcome)
                if not stored:
                    log.warning("message %s: lease lost before the outcome was stored", message.id)
                elif outcome.provider_id is not None:
                    identified.append((message, outcome.provider_id))
            # Once every id of the job is stored: an early report may correct the order.
            for message, provider_id in identified:
                await take_from_wrong_holders(session, message.id, provider_id, message.to)
                await apply_pending_reports(session, message.id, provider_id)
        for message, outcome in zip(job, decided, strict=True):
            if outcome.status != Status.QUEUED:
                log.info("message %s to %s: %s", message.id, mask(message.to), outcome.attempt)
            elif outcome.attempt == "transient":
                log.info("message %s retry later: %s", message.id, outcome.error)

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
        self, session: AsyncSession, message: Claimed, started: datetime, outcome: Outcome
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


def _job_tag(job: list[Claimed], decided: list[Outcome]) -> str | None:
    """The tag the job went with, or its messages' look-ups found them under."""
    tags = (o.values.get("job_tag") or m.job_tag for m, o in zip(job, decided, strict=True))
    return next((t for t in tags if t), None)
