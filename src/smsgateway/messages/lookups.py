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
the receiver at a check made ``uncertain_settle_seconds`` after
``uncertain_since`` (a request OVHcloud is still taking may show as a job a
little late; the wait also gives reports time to come), and no SMS for it in
a listing made ``listing_lag_seconds`` after that check (OVHcloud lists a job
some time after it runs).

The check is dated when it was proven, not when it was asked: a job listed
by ``GET /jobs`` and gone when its details are read ran in between, so the
check counts from that read. The first clean check after the settle time is
kept: a later one proves nothing more, and would only push the listing
further away. Job ids the gateway holds as the SMS id of a message that went
alone (its own recent sends) are matched to that message's number without a
call; a batch's mapping is what an answer out of order makes wrong.

An SMS id another message already holds is never adopted: a message that
heads two jobs gives both its tag, so one tag may list several jobs' SMS.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from smsgateway.config import Settings
from smsgateway.db import utcnow
from smsgateway.messages.queue import Claimed
from smsgateway.messages.reports import unapplied_ids
from smsgateway.models.messages import Message
from smsgateway.numbers import receiver_key
from smsgateway.providers.base import SmsProvider

# A listing or pending-job check older than this is made again when a message needs it.
RECHECK_SECONDS = 15.0
# Tags and ids remembered; the oldest are forgotten past these.
MAX_TAGS = 5_000
MAX_IDS = 100_000

K = TypeVar("K")
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
        # job id -> (receiver key, or None once gone; when that was read)
        self._job_receivers: OrderedDict[str, tuple[str | None, datetime]] = OrderedDict()
        # (tag, receiver key) -> when no pending job for it was proven, after its since
        self._clear: OrderedDict[tuple[str, str], datetime] = OrderedDict()
        self._locks: dict[str, asyncio.Lock] = {}
        self._jobs_lock = asyncio.Lock()

    async def find(self, message: Claimed, now: datetime) -> Verdict:
        """What is known of ``message`` at the provider. Raises ``ProviderError``."""
        tag = message.job_tag or message.provider_tag
        key = receiver_key(message.to)
        since = message.uncertain_since or now
        reported = await self._reported(tag, key, message.id)
        if reported is not None:
            return Verdict(provider_id=reported)
        if len(self._locks) > MAX_TAGS:
            self._locks = {t: held for t, held in self._locks.items() if held.locked()}
        try:
            # Members of a batch wait for each other, then share what the first learnt.
            async with self._locks.setdefault(tag, asyncio.Lock()):
                return await self._find(message.id, tag, key, since, now)
        except OutOfBudget as exc:
            return Verdict(until=now + timedelta(seconds=exc.wait), reason="throttled")

    def forget(self, tag: str) -> None:
        """A job goes out with ``tag`` again: its listing is out of date."""
        self._listings.pop(tag, None)

    async def _find(
        self, message_id: str, tag: str, key: str, since: datetime, now: datetime
    ) -> Verdict:
        listing = self._listings.get(tag)
        stale = now - timedelta(seconds=RECHECK_SECONDS)
        if listing is None or listing.at < since or listing.at < stale:
            listing = await self._list(tag)
        found = await self._match(listing, key, message_id)
        if found is not None:
            return Verdict(provider_id=found)
        settle = timedelta(seconds=self.settings.dispatch.uncertain_settle_seconds)
        settled_at = since + settle
        if utcnow() < settled_at:
            # OVHcloud may still be taking the request: a pending check now proves nothing.
            return Verdict(until=settled_at, reason="not listed yet")
        clear_at = self._clear.get((tag, key))
        if clear_at is None or clear_at < settled_at:
            jobs = await self._pending_jobs(settled_at, now)
            pending, clear_at = await self._pending(jobs, key)
            if pending:
                self._clear.pop((tag, key), None)
                until = now + timedelta(seconds=RECHECK_SECONDS)
                return Verdict(until=until, reason="pending at the provider")
            _remember(self._clear, (tag, key), clear_at)
        lag = timedelta(seconds=self.settings.provider.listing_lag_seconds)
        ready_at = clear_at + lag
        if listing.at < ready_at:
            if utcnow() < ready_at:
                return Verdict(until=ready_at, reason="not listed yet")
            listing = await self._list(tag)
            found = await self._match(listing, key, message_id)
            if found is not None:
                return Verdict(provider_id=found)
        return ABSENT

    async def _reported(self, tag: str, key: str, message_id: str) -> str | None:
        """An SMS id from a report already received for ``tag`` and this receiver."""
        async with self.sessionmaker() as session:
            reported = await unapplied_ids(session, tag, key)
        for provider_id in reported:
            if not await self._held_by_another(provider_id, message_id, key):
                return provider_id
        return None

    async def _held_by_another(self, sms_id: str, message_id: str, key: str) -> bool:
        """Whether another message to the same number holds ``sms_id``.

        One held by a message to another number (an answer out of order) is
        that message's mistake: it is adopted, and ``Delivery`` takes it off
        the holder (``reports.take_from_wrong_holders``).
        """
        async with self.sessionmaker() as session:
            holders = (
                await session.scalars(
                    select(Message.to).where(
                        Message.provider_id == sms_id, Message.id != message_id
                    )
                )
            ).all()
        return any(receiver_key(to) == key for to in holders)

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

    async def _match(self, listing: _Seen, key: str, message_id: str) -> str | None:
        """The listed SMS id for receiver ``key`` no other message holds, fetching
        receivers not known yet."""
        for sms_id in listing.ids:
            known = self._sms_receivers.get(sms_id)
            if known is None:
                await self._call()
                status = await self.provider.outgoing(sms_id)
                if status is None:
                    continue
                known = receiver_key(status.receiver)
                _remember(self._sms_receivers, sms_id, known)
            if known == key and not await self._held_by_another(sms_id, message_id, key):
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

    async def _pending(self, jobs: _Seen, key: str) -> tuple[bool, datetime]:
        """Whether a pending job is for receiver ``key`` (any text: a job carries no
        tag), and, when none is, the moment that was proven (see the module's text)."""
        await self._known_jobs(jobs)
        proven_at = jobs.at
        for job_id in jobs.ids:
            if job_id not in self._job_receivers:
                await self._call()
                receiver = await self.provider.pending_job(job_id)
                seen = (receiver_key(receiver) if receiver else None, utcnow())
                _remember(self._job_receivers, job_id, seen)
            job_key, read_at = self._job_receivers[job_id]
            if job_key == key:
                return True, proven_at
            if job_key is None:
                proven_at = max(proven_at, read_at)
        return False, proven_at

    async def _known_jobs(self, jobs: _Seen) -> None:
        """Receivers of pending jobs the gateway sent itself, read from its messages.

        Only from messages that went alone: a batch's ids are mapped to its
        receivers in the order of the answer, which is what may be wrong.
        """
        unknown = [job_id for job_id in jobs.ids if job_id not in self._job_receivers]
        if not unknown:
            return
        async with self.sessionmaker() as session:
            rows = (
                await session.execute(
                    select(Message.provider_id, Message.to, Message.job_tag).where(
                        Message.provider_id.in_(unknown)
                    )
                )
            ).all()
            tags = {row.job_tag for row in rows if row.job_tag}
            sizes = dict(
                (
                    await session.execute(
                        select(Message.job_tag, func.count())
                        .where(Message.job_tag.in_(tags))
                        .group_by(Message.job_tag)
                    )
                ).all()
            )
        for row in rows:
            if row.job_tag and sizes.get(row.job_tag, 0) == 1:
                seen = (receiver_key(row.to), jobs.at)
                _remember(self._job_receivers, str(row.provider_id), seen)


def _remember(known: OrderedDict[K, V], key: K, value: V) -> None:
    known[key] = value
    while len(known) > MAX_IDS:
        known.popitem(last=False)
