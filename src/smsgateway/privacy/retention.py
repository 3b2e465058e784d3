"""Personal data is not kept for ever: ``SMSGW_RETENTION_DAYS`` (90).

Once older than that, what identifies a person is redacted (``redaction``):
finished messages' texts and numbers, replies' texts and senders, the
numbers of booking requests that are decided, the payloads of webhooks that
are done, and stored event answers. A pass works
through ``BATCH`` rows of each table a transaction, oldest first, every
``SMSGW_RETENTION_CHECK_SECONDS`` (an hour); 0 days turns it off. Messages
still queued or waiting for their report, and webhooks still pending, are
kept whole until they end.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from smsgateway.db import utcnow
from smsgateway.models.callbacks import IncomingMessage
from smsgateway.models.events import BookingEvent, BookingRequest
from smsgateway.models.messages import Message
from smsgateway.models.status import FINAL
from smsgateway.models.webhooks import WebhookDelivery
from smsgateway.privacy.redaction import REDACTED, masked, redacted_answer, redacted_payload
from smsgateway.runtime import Runtime
from smsgateway.workers.loop import SupervisedLoop, error_backoff

log = logging.getLogger(__name__)

BATCH = 500


class Retention:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.settings = runtime.settings.retention
        # Where the last pass stopped in the tables with no redacted mark to filter on.
        self._last_webhook: tuple[datetime, str] | None = None
        self._last_event = 0
        self.loop = SupervisedLoop(
            "retention",
            self._pass,
            backoff=error_backoff(60.0, cap_seconds=self.settings.check_seconds),
        )

    async def run(self, stop: asyncio.Event) -> None:
        if self.settings.days <= 0:
            return
        await self.loop.run(stop)

    async def _pass(self) -> float:
        while await self.run_once() >= BATCH:
            pass  # a backlog: straight on
        return self.settings.check_seconds

    async def run_once(self) -> int:
        """Redact one batch of each table; how many rows in all."""
        before = utcnow() - timedelta(days=self.settings.days)
        done = 0
        async with self.runtime.sessionmaker() as session, session.begin():
            messages = await session.scalars(
                select(Message)
                .where(
                    Message.created_at < before,
                    Message.status.in_([s.value for s in FINAL]),
                    Message.text != REDACTED,
                )
                .order_by(Message.created_at)
                .limit(BATCH)
            )
            for message in messages:
                message.text, message.to = REDACTED, masked(message.to)
                done += 1
            replies = await session.scalars(
                select(IncomingMessage)
                .where(IncomingMessage.created_at < before, IncomingMessage.text != REDACTED)
                .order_by(IncomingMessage.created_at)
                .limit(BATCH)
            )
            for reply in replies:
                reply.text, reply.sender = REDACTED, masked(reply.sender)
                done += 1
            requests = await session.scalars(
                select(BookingRequest)
                .where(
                    BookingRequest.created_at < before,
                    BookingRequest.status != "open",
                    BookingRequest.number.not_like("%*%"),
                )
                .order_by(BookingRequest.created_at)
                .limit(BATCH)
            )
            for request in requests:
                request.number = masked(request.number)
                done += 1
            done += await self._webhooks(session, before)
            done += await self._events(session, before)
        if done:
            log.info("retention: %d rows redacted", done)
        return done

    async def _webhooks(self, session: AsyncSession, before: datetime) -> int:
        query = select(WebhookDelivery).where(
            WebhookDelivery.created_at < before,
            WebhookDelivery.status.in_(["delivered", "failed"]),
        )
        if self._last_webhook is not None:
            at, last_id = self._last_webhook
            query = query.where(
                or_(
                    WebhookDelivery.created_at > at,
                    and_(WebhookDelivery.created_at == at, WebhookDelivery.id > last_id),
                )
            )
        rows = (
            await session.scalars(
                query.order_by(WebhookDelivery.created_at, WebhookDelivery.id).limit(BATCH)
            )
        ).all()
        for webhook in rows:
            if not webhook.payload.get("redacted"):
                webhook.payload = redacted_payload(webhook.payload)
        if rows:
            self._last_webhook = (rows[-1].created_at, rows[-1].id)
        return len(rows)

    async def _events(self, session: AsyncSession, before: datetime) -> int:
        rows = (
            await session.scalars(
                select(BookingEvent)
                .where(BookingEvent.created_at < before, BookingEvent.id > self._last_event)
                .order_by(BookingEvent.id)
                .limit(BATCH)
            )
        ).all()
        for event in rows:
            answer = redacted_answer(event.response)
            if answer != event.response:
                event.response = answer
        if rows:
            self._last_event = rows[-1].id
        return len(rows)
