"""Whether the provider took an SMS whose answer was lost.

A message is *uncertain* when its request may have reached OVHcloud without
its answer reaching us (a read timeout, a 5xx, a worker stopped mid-send).
``uncertain_since`` is the last moment that request could have arrived.
Before it is sent again it is looked up, cheapest first:

1. delivery reports already received for its tag and receiver (no call);
2. OVHcloud's outgoing list for the tag (one call), then each listed SMS
   whose receiver is not known yet (one call each);
3. OVHcloud's pending jobs (one call), then each job not seen yet (one
   call each): a job taken but not run yet is in no outgoing list.

What is learnt is kept across passes and shared by the members of a batch
(they share its tag): a tag's listing, and the receiver of every SMS id and
job id, which never changes. A look-up cut short by the budget resumes where
it stopped, so a lost batch of N costs about N + 3 calls in all. Every call
comes from the look-up share of the call budget (``Delivery._spend_lookup``).

The verdict is *found* (adopt the SMS id), *absent* (never taken: it may be
sent), or *wait* until a given time. Absent needs proof: no pending job for
the receiver at a check made after ``uncertain_since``, and no SMS for it in
a listing made ``listing_lag_seconds`` after that check (OVHcloud lists a
job some time after it runs), and at least ``uncertain_settle_seconds``
since the message became uncertain, which gives its reports time to come.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from smsgateway.config import Settings
from smsgateway.db import utcnow
from smsgateway.messages.queue import Claimed
from smsgateway.models.callbacks import DeliveryReport
from smsgateway.numbers import receiver_key
from smsgateway.providers.base import SmsProvider

# A listing or pending-job check older than this is made again when a message needs it.
RECHECK_SECONDS = 15.0
# Tags and ids remembered; the oldest are forgotten past these.
MAX_TAGS = 5_000
MAX_IDS = 100_000

V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class Verdict:
    """``provider_id`` when found; ``absent`` when never taken; else wait ``until``."""

    provider_id: str | None = None
    absent: bool = False
    until: datetime | None = None
    reason: str = ""


ABSENT = Verdict(absent=True)


class OutOfBudget(Exception):
    def __init__(self, wait: float) -> None:
        super().__init__(f"no look-up budget for {wait:.0f} s")
        self.wait = wait


@dataclass(slots=True)
class _Seen:
    """One listing (a tag's outgoing SMS, or the pending jobs): when, and what."""

    at: datetime
    ids: list[str] = field(default_factory=list)


# Takes one call from the look-up budget: 0 when it may go, else seconds to wait.
Spend = Callable[[], Awaitable[float]]


class Lookups:
    """Look-ups of one worker, remembered across its passes (see the module's text)."""

    def __init__(
        self,
        provider: SmsProvider,
        sessionmaker: async_sessionmaker[AsyncSession],
        spend: Spend,
        settings: Settings,
    ) -> None:
        self.provider = provider
        self.sessionmaker = sessionmaker
        self.spend = spend
        self.settings = settings
        self._listings: OrderedDict[str, _Seen] = OrderedDict()
        self._jobs: _Seen | None = None
        self._sms_receivers: OrderedDict[str, str] = OrderedDict()  # SMS id -> receiver key
        self._job_receivers: OrderedDict[str, str | None] = OrderedDict()  # None: job gone
        self._locks: dict[str, asyncio.Lock] = {}
        self._jobs_lock = asyncio.Lock()

    async def find(self, message: Claimed, now: datetime) -> Verdict:
        """What is known of ``message`` at the provider. Raises ``ProviderError``."""
        tag = message.job_tag or message.provider_tag
        key = receiver_key(message.to)
        since = message.uncertain_since or now
        reported = await self._reported(tag, key)
        if reported is not None:
            return Verdict(provider_id=reported)
        if len(self._locks) > MAX_TAGS:
            self._locks = {t: held for t, held in self._locks.items() if held.locked()}
        try:
            # Members of a batch wait for each other, then share what the first learnt.
            async with self._locks.setdefault(tag, asyncio.Lock()):
                return await self._find(tag, key, since, now)
        except OutOfBudget as exc:
            return Verdict(until=now + timedelta(seconds=exc.wait), reason="throttled")

    def forget(self, tag: str) -> None:
        """A job goes out with ``tag`` again: its listing is out of date."""
        self._listings.pop(tag, None)

    async def _find(self, tag: str, key: str, since: datetime, now: datetime) -> Verdict:
        listing = self._listings.get(tag)
        stale = now - timedelta(seconds=RECHECK_SECONDS)
        if listing is None or listing.at < since or listing.at < stale:
            listing = await self._list(tag)
        found = await self._match(listing, key)
        if found is not None:
            return Verdict(provider_id=found)
        jobs = await self._pending_jobs(since, now)
        if await self._pending(jobs, key):
            until = now + timedelta(seconds=RECHECK_SECONDS)
            return Verdict(until=until, reason="pending at the provider")
        settle = timedelta(seconds=self.settings.dispatch.uncertain_settle_seconds)
        lag = timedelta(seconds=self.settings.provider.listing_lag_seconds)
        ready_at = max(since + settle, jobs.at + lag)
        if listing.at < ready_at:
            if utcnow() < ready_at:
                return Verdict(until=ready_at, reason="not listed yet")
            listing = await self._list(tag)
            found = await self._match(listing, key)
            if found is not None:
                return Verdict(provider_id=found)
        return ABSENT

    async def _reported(self, tag: str, key: str) -> str | None:
        """An SMS id from a report already received for ``tag`` and this receiver."""
        async with self.sessionmaker() as session:
            rows = (
                await session.execute(
                    select(DeliveryReport.provider_id).where(
                        DeliveryReport.tag == tag,
                        DeliveryReport.receiver_key == key,
                        DeliveryReport.applied.is_(False),
                    )
                )
            ).all()
        return rows[0].provider_id if rows else None

    async def _call(self) -> None:
        wait = await self.spend()
        if wait > 0:
            raise OutOfBudget(wait)

    async def _list(self, tag: str) -> _Seen:
        await self._call()
        listed = _Seen(utcnow(), await self.provider.find_by_tag(tag))
        self._listings[tag] = listed
        self._listings.move_to_end(tag)
        while len(self._listings) > MAX_TAGS:
            self._listings.popitem(last=False)
        return listed

    async def _match(self, listing: _Seen, key: str) -> str | None:
        """The listed SMS id for receiver ``key``, fetching receivers not known yet."""
        for sms_id in listing.ids:
            known = self._sms_receivers.get(sms_id)
            if known is None:
                await self._call()
                status = await self.provider.outgoing(sms_id)
                if status is None:
                    continue
                known = receiver_key(status.receiver)
                _remember(self._sms_receivers, sms_id, known)
            if known == key:
                return sms_id
        return None

    async def _pending_jobs(self, since: datetime, now: datetime) -> _Seen:
        async with self._jobs_lock:
            jobs = self._jobs
            stale = now - timedelta(seconds=RECHECK_SECONDS)
            if jobs is None or jobs.at < since or jobs.at < stale:
                await self._call()
                jobs = self._jobs = _Seen(utcnow(), await self.provider.pending_jobs())
            return jobs

    async def _pending(self, jobs: _Seen, key: str) -> bool:
        """Whether a pending job is for receiver ``key`` (any text: a job carries no tag)."""
        for job_id in jobs.ids:
            if job_id not in self._job_receivers:
                await self._call()
                receiver = await self.provider.pending_job(job_id)
                _remember(self._job_receivers, job_id, receiver_key(receiver) if receiver else None)
            if self._job_receivers[job_id] == key:
                return True
        return False


def _remember(known: OrderedDict[str, V], key: str, value: V) -> None:
    known[key] = value
    while len(known) > MAX_IDS:
        known.popitem(last=False)
