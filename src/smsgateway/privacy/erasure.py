"""Erasing a person's number from everything a client holds (a GDPR erasure request).

``POST /v1/erasures`` with the number: the client's registrations of it are
deleted; its messages to that number still queued are cancelled (refunded),
and those the provider may have keep their course; every message, webhook
payload and stored event answer of the client that holds the number is
redacted (``redaction``), and so are the replies from it to the client's
booking requests. Counts, statuses, credits and the ledger stay. STOP is
kept: the number's opt-out is the person's own choice, not the client's data,
and erasing it would let texts go again.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from smsgateway.db import utcnow
from smsgateway.messages.lifecycle import settle_queued
from smsgateway.models.callbacks import IncomingMessage
from smsgateway.models.campaigns import Campaign
from smsgateway.models.events import BookingEvent, BookingRequest
from smsgateway.models.messages import Message
from smsgateway.models.phones import ErasedNumber, UserPhone
from smsgateway.models.status import Status
from smsgateway.models.webhooks import WebhookDelivery
from smsgateway.numbers import receiver_key
from smsgateway.privacy.redaction import (
    REDACTED,
    masked,
    mentions,
    redacted_answer,
    redacted_payload,
    without,
)


@dataclass(frozen=True, slots=True)
class Erased:
    registrations: int
    cancelled: int
    messages: int
    webhooks: int
    events: int
    replies: int


async def erase_number(session: AsyncSession, client_id: str, e164: str) -> Erased:
    """Erase ``e164`` from what ``client_id`` holds (see the module's text). The caller commits."""
    registrations = (
        await session.scalars(
            delete(UserPhone)
            .where(UserPhone.client_id == client_id, UserPhone.number == e164)
            .returning(UserPhone.id)
        )
    ).all()
    cancelled = await settle_queued(
        session,
        Message.client_id == client_id,
        Message.to == e164,
        status=Status.CANCELLED,
        reason="erased",
        refund_reason="number erased",
    )
    messages = (
        await session.scalars(
            select(Message).where(Message.client_id == client_id, Message.to == e164)
        )
    ).all()
    for message in messages:
        message.text, message.to = REDACTED, masked(message.to)
    # Its booking requests: closed (a reply from the number no longer decides them).
    requests = (
        await session.scalars(
            select(BookingRequest).where(
                BookingRequest.client_id == client_id, BookingRequest.number == e164
            )
        )
    ).all()
    for request in requests:
        request.number = masked(request.number)
        if request.status == "open":
            request.status, request.decided_at = "closed", utcnow()
    await _record(session, client_id, e164)
    await _redact_campaigns(session, client_id, e164)
    return Erased(
        registrations=len(registrations),
        cancelled=len(cancelled),
        messages=len(messages),
        webhooks=await _redact_webhooks(session, client_id, e164),
        events=await _redact_events(session, client_id, e164),
        replies=await _redact_replies(session, client_id, e164),
    )


async def _redact_webhooks(session: AsyncSession, client_id: str, e164: str) -> int:
    webhooks = 0
    of_client = select(WebhookDelivery).where(WebhookDelivery.client_id == client_id)
    for webhook in await session.scalars(of_client):
        if mentions(webhook.payload, e164):
            webhook.payload = redacted_payload(webhook.payload)
            webhooks += 1
    return webhooks


async def _redact_events(session: AsyncSession, client_id: str, e164: str) -> int:
    events = 0
    of_client = select(BookingEvent).where(BookingEvent.client_id == client_id)
    for event in await session.scalars(of_client):
        if mentions(event.response, e164):
            event.response = redacted_answer(event.response)
            events += 1
    return events


async def _redact_replies(session: AsyncSession, client_id: str, e164: str) -> int:
    requests = select(BookingRequest.id).where(BookingRequest.client_id == client_id)
    replies = (
        await session.scalars(
            select(IncomingMessage).where(
                IncomingMessage.sender == e164, IncomingMessage.booking_request_id.in_(requests)
            )
        )
    ).all()
    for reply in replies:
        reply.text, reply.sender = REDACTED, masked(reply.sender)
    return len(replies)


async def _record(session: AsyncSession, client_id: str, e164: str) -> None:
    """Remember the erasure by a key of the number: campaigns being made skip it."""
    key = receiver_key(e164)
    if await session.get(ErasedNumber, (client_id, key)) is None:
        session.add(ErasedNumber(client_id=client_id, number_key=key, erased_at=utcnow()))
    await session.flush()


async def _redact_campaigns(session: AsyncSession, client_id: str, e164: str) -> None:
    """Rows of the client's campaign summaries (samples, skipped, invalid) that name it go."""
    for campaign in await session.scalars(select(Campaign).where(Campaign.client_id == client_id)):
        if mentions(campaign.summary, e164):
            campaign.summary = without(campaign.summary, e164)
