"""Accepting, showing and cancelling campaigns.

Accepting a campaign is one quick transaction: the CSV is surveyed (the same
pass as a dry run), the campaign's credits are held, and the campaign is
stored with its CSV, in 1 MiB slices. The messages are created afterwards by
the campaign worker (``campaigns.worker``), a batch per transaction, so a
100,000-row campaign neither holds a request open nor locks the database
for long.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import BinaryIO, Literal

from sqlalchemy import ColumnElement, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from smsgateway.campaigns.schemas import (
    CampaignDryRun,
    CampaignIn,
    CampaignOut,
    CampaignProgress,
    CampaignSummary,
)
from smsgateway.campaigns.survey import survey
from smsgateway.credits.holds import hold, release
from smsgateway.credits.refunds import refund_cancelled
from smsgateway.dates import check_schedule
from smsgateway.db import utcnow
from smsgateway.errors import Problem
from smsgateway.messages.lifecycle import settle_queued
from smsgateway.models.campaigns import Campaign, CampaignChunk, new_campaign_id
from smsgateway.models.clients import ApiClient
from smsgateway.models.messages import Message
from smsgateway.models.status import Status
from smsgateway.runtime import Runtime

CHUNK_BYTES = 1024 * 1024
CANCEL_BATCH = 1000  # messages cancelled and refunded a statement

CREATING, CREATED, CANCELLED = "creating", "created", "cancelled"
ShownStatus = Literal["creating", "sending", "completed", "cancelled"]


async def create_campaign(
    session: AsyncSession, runtime: Runtime, client_id: str, body: CampaignIn, source: BinaryIO
) -> CampaignDryRun | Campaign:
    """A dry run's summary, or the accepted campaign (committed).

    A campaign with nothing to send is a 422; credits short of the total are
    a 402, and nothing is stored in either case.
    """
    check_schedule(body.send_at, runtime.settings.dispatch.max_schedule_days)
    client = await session.get(ApiClient, client_id)
    countries = (
        client.countries(runtime.settings.api.default_allowed_countries) if client else frozenset()
    )
    summary = await survey(session, runtime, source, body.text, countries)
    if body.dry_run:
        return CampaignDryRun(name=body.name, text=body.text, summary=summary)
    if summary.recipients == 0:
        raise Problem(
            422,
            "no-recipients",
            "Nothing to send",
            "No row of the CSV has a number that can get this campaign.",
            invalid=summary.invalid,
            skipped=summary.skipped.opted_out
            + summary.skipped.suspended
            + summary.skipped.country_not_allowed,
        )
    now = utcnow()
    campaign = Campaign(
        id=new_campaign_id(),
        client_id=client_id,
        name=body.name,
        tag=body.tag,
        text=body.text,
        delimiter=summary.delimiter,
        columns=summary.columns,
        quiet_hours=body.quiet_hours,
        send_at=body.send_at,
        status=CREATING,
        summary=summary.model_dump(mode="json"),
        credits=summary.credits,
        cost=summary.cost,
        charged=False,
        credits_held=Decimal(0),
        next_row=0,
        messages_created=0,
        pace_at=body.send_at,
        created_at=now,
        updated_at=now,
    )
    session.add(campaign)
    await session.flush()
    campaign.charged = await hold(session, client_id, campaign.id, summary.credits)
    campaign.credits_held = summary.credits if campaign.charged else Decimal(0)
    await _store_csv(session, campaign.id, source)
    await session.commit()
    return campaign


async def _store_csv(session: AsyncSession, campaign_id: str, source: BinaryIO) -> None:
    """Copy the uploaded file into ``campaign_chunks``, one slice at a time."""
    await asyncio.to_thread(source.seek, 0)
    seq = 0
    while chunk := await asyncio.to_thread(source.read, CHUNK_BYTES):
        await session.execute(
            insert(CampaignChunk).values(campaign_id=campaign_id, seq=seq, data=chunk)
        )
        seq += 1


async def get_campaign(
    session: AsyncSession, client_id: str, campaign_id: str, *, lock: bool = False
) -> Campaign:
    """The client's campaign, or a 404. ``lock`` takes its row lock by writing it.

    A write, not ``SELECT … FOR UPDATE``: SQLite has no row locks and only
    takes its write lock at a transaction's first write.
    """
    owned = (Campaign.id == campaign_id, Campaign.client_id == client_id)
    if lock:
        await session.execute(
            update(Campaign)
            .where(*owned)
            .values(updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )
    query = select(Campaign).where(*owned)
    campaign = await session.scalar(query.execution_options(populate_existing=True))
    if campaign is None:
        raise Problem(
            404,
            "campaign-not-found",
            "Campaign not found",
            f"No campaign {campaign_id[:40]!r} for this client.",
        )
    return campaign


async def list_campaigns(session: AsyncSession, client_id: str, limit: int) -> list[Campaign]:
    rows = await session.scalars(
        select(Campaign)
        .where(Campaign.client_id == client_id)
        .order_by(Campaign.created_at.desc(), Campaign.id.desc())
        .limit(limit)
    )
    return list(rows)


async def describe(session: AsyncSession, campaign: Campaign) -> CampaignOut:
    """The campaign with its messages counted by status."""
    counts = {
        status: count
        for status, count in (
            await session.execute(
                select(Message.status, func.count())
                .where(Message.campaign_id == campaign.id)
                .group_by(Message.status)
            )
        ).all()
    }
    return CampaignOut(
        id=campaign.id,
        name=campaign.name,
        text=campaign.text,
        tag=campaign.tag,
        status=_shown_status(campaign.status, counts),
        send_at=campaign.send_at,
        quiet_hours=campaign.quiet_hours,
        created_at=campaign.created_at,
        finished_at=campaign.finished_at,
        summary=CampaignSummary.model_validate(campaign.summary),
        progress=CampaignProgress(
            rows_done=campaign.next_row,
            messages=sum(counts.values()),
            by_status=dict(sorted(counts.items())),
        ),
    )


def _shown_status(stored: str, counts: dict[str, int]) -> ShownStatus:
    if stored == CREATING:
        return "creating"
    if stored == CANCELLED:
        return "cancelled"
    waiting = counts.get(Status.QUEUED.value, 0) + counts.get(Status.SENDING.value, 0)
    return "sending" if waiting else "completed"


async def cancel_campaign(session: AsyncSession, client_id: str, campaign_id: str) -> Campaign:
    """Stop creating messages, cancel the queued ones and give their credits back.

    Cancelling twice answers the cancelled campaign again; a campaign whose
    messages have all been handed to OVHcloud is a 409.
    """
    campaign = await get_campaign(session, client_id, campaign_id, lock=True)
    if campaign.status == CANCELLED:
        return campaign
    now = utcnow()
    cancelled = await _cancel_queued(session, campaign)
    if campaign.status == CREATED and cancelled == 0:
        raise Problem(
            409,
            "campaign-finished",
            "Campaign already sent",
            "Every message of this campaign has been sent or has ended; nothing to stop.",
        )
    campaign.status = CANCELLED
    campaign.finished_at = campaign.finished_at or now
    campaign.updated_at = now
    campaign.lease_owner = campaign.lease_until = None
    await release(session, campaign, "cancelled, credits not used")
    await session.execute(delete(CampaignChunk).where(CampaignChunk.campaign_id == campaign.id))
    return campaign


async def _cancel_queued(session: AsyncSession, campaign: Campaign) -> int:
    """Cancel and refund the campaign's queued messages, a batch at a time.

    A message OVHcloud may already have (being sent, or *uncertain*) runs its
    course: it is cancelled, and refunded, only once it is known not to have
    gone (``lifecycle.settle_queued``).
    """
    total = 0
    while True:
        waiting = (
            await session.scalars(
                select(Message.id)
                .where(
                    Message.campaign_id == campaign.id,
                    Message.status == Status.QUEUED.value,
                    Message.uncertain.is_(False),
                )
                .limit(CANCEL_BATCH)
            )
        ).all()
        if not waiting:
            break
        # Re-checked on the row: a dispatcher may have taken some meanwhile.
        refunds: list[str] = []
        moved = await _settle(session, campaign, Message.id.in_(waiting), refunds=refunds)
        await refund_cancelled(session, campaign.client_id, refunds, "campaign cancelled")
        total += len(moved)
    # Those OVHcloud may have: pending until their attempt or look-up says.
    pending: list[str] = []
    total += len(await _settle(session, campaign, Message.campaign_id == campaign.id, pending))
    return total + len(pending)


async def _settle(
    session: AsyncSession,
    campaign: Campaign,
    where: ColumnElement[bool],
    pending: list[str] | None = None,
    *,
    refunds: list[str] | None = None,
) -> list[str]:
    return await settle_queued(
        session,
        where,
        status=Status.CANCELLED,
        reason="campaign_cancelled",
        refund_reason="campaign cancelled",
        refunds=refunds,
        pending=pending,
        notify=False,  # the campaign's cancel is the news, not each message's
    )
