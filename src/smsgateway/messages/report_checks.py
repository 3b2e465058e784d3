"""Catching up on delivery reports that never came.

A message ``submitted`` for longer than ``SMSGW_DLR_CHECK_AFTER_SECONDS`` is looked
up at the provider (``GET /sms/{sn}/outgoing/{id}``) at most once per that
period; a final state found there is recorded as a delivery report, so it goes
through the same idempotent path as a pushed one. A message still without an
outcome after ``SMSGW_DLR_GIVE_UP_HOURS`` ends ``expired`` (reason
``no_delivery_report``); it stays billed, since the provider accepted it.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select

from smsgateway.db import utcnow
from smsgateway.messages.lifecycle import expire_unreported
from smsgateway.messages.reports import ReportIn, record_report
from smsgateway.models.messages import Message
from smsgateway.models.status import Status
from smsgateway.providers.base import ProviderError
from smsgateway.providers.health import take_call
from smsgateway.providers.ovh.codes import DLR_PENDING
from smsgateway.runtime import Runtime
from smsgateway.workers.claim import claim_rows
from smsgateway.workers.loop import SupervisedLoop, error_backoff

log = logging.getLogger(__name__)

BATCH = 100


class ReportChecker:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        interval = self.settings.delivery_reports.check_interval_seconds
        self.loop = SupervisedLoop(
            "report checks",
            self._pass,
            # A failed look-up waits about as long as a pass would have.
            backoff=error_backoff(interval, cap_seconds=interval),
            expected=(ProviderError,),
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Check every ``SMSGW_DLR_CHECK_INTERVAL_SECONDS`` until ``stop``; 0 turns checks off."""
        if self.settings.delivery_reports.check_interval_seconds <= 0:
            return
        await self.loop.run(stop)

    async def _pass(self) -> float:
        await self.check_once()
        return self.settings.delivery_reports.check_interval_seconds

    async def check_once(self) -> int:
        """Look up one batch of overdue messages. Returns how many got a final state."""
        now = utcnow()
        overdue = now - timedelta(seconds=self.settings.delivery_reports.check_after_seconds)
        give_up = now - timedelta(hours=self.settings.delivery_reports.give_up_hours)
        settled = await self._give_up(give_up)
        # Claimed by stamping checked_at, so several workers share the work
        # instead of all looking up the same messages.
        overdue_rows = and_(
            Message.status == Status.SUBMITTED.value,
            Message.submitted_at < overdue,
            Message.provider_id.is_not(None),
            or_(Message.checked_at.is_(None), Message.checked_at < overdue),
        )
        claim = claim_rows(
            Message.id,
            overdue_rows,
            order_by=Message.submitted_at,
            limit=BATCH,
            name="overdue_reports",
        )
        async with self.runtime.sessionmaker() as session, session.begin():
            provider_ids = (
                await session.scalars(claim.values(checked_at=now).returning(Message.provider_id))
            ).all()
        provider = self.runtime.provider
        for provider_id in provider_ids:
            if provider_id is None:  # excluded by the query; narrows the type
                continue
            async with self.runtime.sessionmaker() as session, session.begin():
                if (
                    await take_call(session, provider.name, self.settings.provider.calls_per_minute)
                    > 0
                ):
                    break  # out of budget this minute: the next pass goes on
            status = await provider.outgoing(provider_id)
            async with self.runtime.sessionmaker() as session, session.begin():
                if status is not None and status.dlr is not None and status.dlr not in DLR_PENDING:
                    report = ReportIn(
                        provider=provider.name,
                        provider_id=provider_id,
                        dlr=status.dlr,
                        ptt=status.ptt,
                        reported_at="looked-up",
                        description="looked up at the provider",
                        params={"source": "lookup"},
                        tag=status.tag,
                        receiver=status.receiver or None,
                    )
                    settled += await record_report(session, report)
        return settled

    async def _give_up(self, before: datetime) -> int:
        async with self.runtime.sessionmaker() as session, session.begin():
            stale = (
                await session.scalars(
                    select(Message.id)
                    .where(
                        and_(
                            Message.status == Status.SUBMITTED.value, Message.submitted_at < before
                        )
                    )
                    .limit(BATCH)
                )
            ).all()
            for message_id in stale:
                await expire_unreported(session, message_id)
        if stale:
            log.warning("%d message(s) expired without a delivery report", len(stale))
        return len(stale)
