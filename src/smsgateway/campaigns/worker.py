"""The campaign worker: turns accepted campaigns' CSV rows into paced messages.

A campaign in ``creating`` is leased by one worker (``lease_until``, renewed
each batch; a worker that dies leaves it to another once the lease runs
out). The worker copies the stored CSV to a temporary file, reads it again
with the same code as the survey, and creates ``SMSGW_CAMPAIGN_BATCH_SIZE``
messages per transaction: one transaction holds the campaign's row lock, so
a cancel waits for the batch in progress and the next batch sees the cancel.
``next_row`` records how far it got, so a new holder resumes there.

Pacing: the messages' due times are spread at ``SMSGW_CAMPAIGN_RATE_PER_SECOND``
from the campaign's ``send_at`` (or now) inside marketing hours; each one is
then held out of its recipient's quiet hours, unless the campaign said not to.
The dispatcher sends each when due, with ``noStopClause`` false.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import BinaryIO

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from smsgateway.campaigns.csv_reader import GoodRow
from smsgateway.campaigns.service import CREATED, CREATING
from smsgateway.campaigns.survey import Judged, judged_batches, open_csv
from smsgateway.credits.holds import hand_to_messages, release
from smsgateway.db import utcnow
from smsgateway.messages.recipients import Recipient
from smsgateway.messages.schedule import campaign_due, in_marketing_hours
from smsgateway.messages.service import announce_queued, build_message
from smsgateway.models.campaigns import Campaign, CampaignChunk
from smsgateway.models.clients import ApiClient
from smsgateway.models.messages import Message
from smsgateway.models.phones import ErasedNumber
from smsgateway.numbers import receiver_key
from smsgateway.runtime import Runtime
from smsgateway.workers.claim import claim_rows, default_worker_id
from smsgateway.workers.loop import SupervisedLoop, error_backoff

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Plan:
    """What a batch's messages need of their campaign (plain values, for a thread)."""

    client_id: str
    campaign_id: str
    tag: str | None
    send_at: datetime | None
    quiet_hours: bool
    start: datetime


class CampaignWorker:
    """Creates campaign messages; ``clock`` is injectable so tests control time."""

    def __init__(
        self,
        runtime: Runtime,
        worker_id: str | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self.worker_id = (worker_id or default_worker_id())[:64]
        self.clock = clock
        # A failed campaign is left to its lease, and so tried again (by any worker).
        self.loop = SupervisedLoop(
            "campaign worker",
            self._pass,
            backoff=error_backoff(self.settings.worker.poll_seconds),
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Create messages until ``stop`` is set; poll for new campaigns when idle."""
        await self.loop.run(stop)

    async def _pass(self) -> float:
        return 0.0 if await self.run_once() else self.settings.worker.poll_seconds

    async def run_once(self) -> bool:
        """Lease one campaign and create all its messages. False: nothing to do."""
        campaign_id = await self._claim()
        if campaign_id is None:
            return False
        try:
            with tempfile.TemporaryFile() as source:
                await self._restore(campaign_id, source)
                await self._create_messages(campaign_id, source)
        except Exception as exc:
            # Kept on the campaign for ops; the lease runs out and it is tried again.
            async with self.runtime.sessionmaker() as session, session.begin():
                await session.execute(
                    update(Campaign)
                    .where(Campaign.id == campaign_id)
                    .values(last_error=f"{type(exc).__name__}: {exc}"[:255])
                    .execution_options(synchronize_session=False)
                )
            raise
        return True

    async def _claim(self) -> str | None:
        now = self.clock()
        free = or_(Campaign.lease_until.is_(None), Campaign.lease_until < now)
        ready = and_(Campaign.status == CREATING, free)
        waiting = select(Campaign.id).where(ready).order_by(Campaign.created_at).limit(1)
        claim = claim_rows(
            Campaign.id,
            ready,
            order_by=Campaign.created_at,
            limit=1,
            name="waiting_campaigns",
            recheck=free,
        )
        async with self.runtime.sessionmaker() as session, session.begin():
            # A plain read first: polling must not take SQLite's write lock every second.
            if await session.scalar(waiting) is None:
                return None
            claimed: str | None = await session.scalar(
                claim.values(lease_owner=self.worker_id, lease_until=now + self._lease()).returning(
                    Campaign.id
                )
            )
        return claimed

    async def _restore(self, campaign_id: str, target: BinaryIO) -> None:
        """Copy the stored CSV to ``target``, a slice at a time."""
        async with self.runtime.sessionmaker() as session:
            seqs = await session.scalars(
                select(CampaignChunk.seq)
                .where(CampaignChunk.campaign_id == campaign_id)
                .order_by(CampaignChunk.seq)
            )
            for seq in seqs.all():
                data = await session.scalar(
                    select(CampaignChunk.data).where(
                        CampaignChunk.campaign_id == campaign_id, CampaignChunk.seq == seq
                    )
                )
                await asyncio.to_thread(target.write, data or b"")
        await asyncio.to_thread(target.seek, 0)

    async def _create_messages(self, campaign_id: str, source: BinaryIO) -> None:
        async with self.runtime.sessionmaker() as session:
            campaign = await session.get(Campaign, campaign_id)
            assert campaign is not None
            text, start = campaign.text, campaign.next_row
            reader = await open_csv(source, text, self.runtime)
            erased = await erased_since(session, campaign.client_id, campaign.created_at)
            client = await session.get(ApiClient, campaign.client_id)
            default = self.settings.api.default_allowed_countries
            countries = client.countries(default) if client else frozenset()
            seen = 0
            size = self.settings.campaigns.batch_size
            async for batch in judged_batches(session, reader, size, countries):
                # Rows before next_row have their messages already (an earlier holder).
                fresh = [
                    (
                        row,
                        "erased"
                        if isinstance(row, GoodRow) and receiver_key(row.to) in erased
                        else refusal,
                    )
                    for row, refusal in batch[max(0, start - seen) :]
                ]
                seen += len(batch)
                if fresh and not await self._create_batch(session, campaign_id, fresh, seen):
                    await session.rollback()
                    return
                await session.commit()
                session.expunge_all()
                self.runtime.wakeup.set()  # an in-process dispatcher: the first are due
            await self._finish(session, campaign_id)

    async def _create_batch(
        self, session: AsyncSession, campaign_id: str, batch: list[Judged], rows_done: int
    ) -> bool:
        """Create one batch's messages; False when the campaign is no longer ours to fill."""
        campaign = await self._locked(session, campaign_id)
        if campaign is None:
            return False
        now = self.clock()
        plan = _Plan(
            client_id=campaign.client_id,
            campaign_id=campaign.id,
            tag=campaign.tag,
            send_at=campaign.send_at,
            quiet_hours=campaign.quiet_hours,
            start=max(campaign.pace_at or now, now),
        )
        # Pure CPU (texts, parts, time zones): off the event loop, so a worker in the
        # API's process does not hold requests up.
        messages, cursor = await asyncio.to_thread(self._build, plan, batch)
        await hand_to_messages(session, campaign, messages)
        session.add_all(messages)
        campaign.next_row = rows_done
        campaign.messages_created += len(messages)
        campaign.pace_at = cursor
        if messages:
            await announce_queued(session, self.runtime)
        return True

    def _build(self, plan: _Plan, batch: list[Judged]) -> tuple[list[Message], datetime]:
        """The batch's messages, paced from ``plan.start``; and where the pace got to."""
        pace = timedelta(seconds=1 / self.settings.campaigns.rate_per_second)
        cursor = plan.start
        messages: list[Message] = []
        for row, refusal in batch:
            if not isinstance(row, GoodRow) or refusal is not None:
                continue  # reported by the survey; they get no message
            slot = in_marketing_hours(cursor, self.settings)
            cursor = slot + pace
            recipient = Recipient(to=row.to, country=row.country, language=None, refusal=None)
            messages.append(
                build_message(
                    self.runtime,
                    client_id=plan.client_id,
                    recipient=recipient,
                    text=row.text,
                    send_at=plan.send_at,
                    no_stop_clause=False,  # marketing: OVHcloud adds its STOP mention
                    kind="campaign",
                    due_at=campaign_due(slot, row.to, self.settings, quiet=plan.quiet_hours),
                    quiet_hours=plan.quiet_hours,
                    campaign_id=plan.campaign_id,
                    tag=plan.tag,
                )
            )
        return messages, cursor

    async def _finish(self, session: AsyncSession, campaign_id: str) -> None:
        campaign = await self._locked(session, campaign_id)
        if campaign is None:
            await session.rollback()
            return
        now = self.clock()
        campaign.status = CREATED
        campaign.finished_at = now
        campaign.updated_at = now
        campaign.lease_owner = campaign.lease_until = None
        await release(session, campaign, "not used (rows skipped when created)")
        await session.execute(delete(CampaignChunk).where(CampaignChunk.campaign_id == campaign.id))
        await session.commit()
        log.info("campaign %s: %d messages created", campaign.id, campaign.messages_created)

    async def _locked(self, session: AsyncSession, campaign_id: str) -> Campaign | None:
        """The campaign, locked, if it is still being created and leased to us.

        The lock is taken by writing the row (renewing the lease), not by a
        plain read: on SQLite a transaction only takes the write lock at its
        first write, and a cancel must not slip in between the check and the batch.
        """
        now = self.clock()
        locked = await session.scalar(
            update(Campaign)
            .where(
                Campaign.id == campaign_id,
                Campaign.status == CREATING,
                Campaign.lease_owner == self.worker_id,
            )
            .values(lease_until=now + self._lease(), updated_at=now)
            .returning(Campaign.id)
            .execution_options(synchronize_session=False)
        )
        if locked is None:
            log.info("campaign %s: cancelled, or leased to another worker", campaign_id)
            return None
        return await session.get(Campaign, campaign_id, populate_existing=True)

    def _lease(self) -> timedelta:
        return timedelta(seconds=self.settings.worker.lease_seconds)


async def erased_since(session: AsyncSession, client_id: str, since: datetime) -> set[str]:
    """Keys of the numbers the client erased since ``since`` (they get no message)."""
    rows = await session.scalars(
        select(ErasedNumber.number_key).where(
            ErasedNumber.client_id == client_id, ErasedNumber.erased_at >= since
        )
    )
    return set(rows)
