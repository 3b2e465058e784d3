"""Turning a booking event into messages, exactly once per ``event_id``."""

from __future__ import annotations

import hashlib
import json
import logging

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from smsgateway.booking import RECIPIENTS
from smsgateway.credits.refunds import refund
from smsgateway.credits.reservations import commit_reserved, reserve
from smsgateway.dates import check_schedule
from smsgateway.db import upsert_for, utcnow
from smsgateway.errors import Problem
from smsgateway.events.booking_sms import (
    BookingSms,
    RecipientMemo,
    Timing,
    booking_message,
    resolve_party,
)
from smsgateway.events.reminders import (
    booking_messages,
    cancel_for,
    describe,
    schedule_reminders,
    standing_reminders,
)
from smsgateway.events.requests import close_requests, open_request
from smsgateway.events.schemas import BookingEventAccepted, BookingEventIn, EventMessage, Party
from smsgateway.messages.service import announce_queued
from smsgateway.models.clients import ApiClient
from smsgateway.models.events import BookingEvent
from smsgateway.models.messages import Message, new_message_id
from smsgateway.models.status import Status
from smsgateway.runtime import Runtime

log = logging.getLogger(__name__)

# Events after which a reply can no longer decide the booking.
_SETTLING = frozenset(
    {"booking.accepted", "booking.refused", "booking.expired", "booking.cancelled"}
)


def body_hash(event: BookingEventIn) -> str:
    """A digest of the event's meaning: key order and spacing do not matter."""
    canonical = json.dumps(event.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


async def accept_event(
    session: AsyncSession, runtime: Runtime, client: ApiClient, event: BookingEventIn
) -> tuple[BookingEventAccepted, bool]:
    """Store the event's messages and its idempotency record; commit.

    Returns the answer and whether it was created now (False: a replay).
    The same ``event_id`` with another body is a 409.

    Locks are taken in one order by every event: the booking's request and
    messages first, the client's balance row (refunds, then the reservation)
    last, so two events for one booking arriving together wait for each
    other instead of deadlocking.
    """
    check_schedule(event.send_at, runtime.settings.dispatch.max_schedule_days)
    digest = body_hash(event)
    client_id = client.id  # read now: a rollback below expires loaded objects
    existing = await _recorded(session, client_id, event.event_id)
    if existing is not None:
        return _replay(existing, digest), False

    recipients: RecipientMemo = {}
    refunds: list[str] = []  # reminders cancelled here, refunded last (see above)
    if event.type in _SETTLING:
        await close_requests(session, client_id, event.booking.id)
    known = await booking_messages(session, client_id, event.booking.id)
    await cancel_for(session, event, known, refunds=refunds)
    # A role whose reminder is scheduled or sent already gets nothing more.
    standing = standing_reminders(event, known)
    messages = [
        await _message_for(session, runtime, client_id, event, role, recipients)
        for role in RECIPIENTS[event.type]
        if role not in standing
    ]
    session.add_all(messages)
    reminders = await schedule_reminders(
        session, runtime, client_id, event, known, recipients=recipients, refunds=refunds
    )
    answer = _answer(event, messages, standing, reminders)
    await session.flush()  # the messages, before the event id is claimed
    if not await _record(session, client_id, event, digest, answer):
        # The same event_id was committed meanwhile (a concurrent duplicate):
        # all of this goes, and its answer is replayed.
        return await _replay_winner(session, client_id, event.event_id, digest), False
    if any(m.status == Status.QUEUED for m in messages):
        await announce_queued(session, runtime)
    for message_id in refunds:
        await refund(session, message_id, "booking_changed")
    # One reservation: the event is accepted with its new reminders or not at all
    # (402, and all of it rolls back).
    await reserve(session, client_id, [*messages, *(m for m, created in reminders if created)])
    await commit_reserved(session, client_id)
    runtime.wakeup.set()
    log.info(
        "event accepted type=%s messages=%d reminders=%d",
        event.type,
        len(messages),
        len(reminders),
    )
    return answer, True


def _answer(
    event: BookingEventIn,
    messages: list[Message],
    standing: dict[str, Message],
    reminders: list[tuple[Message, bool]],
) -> BookingEventAccepted:
    """The 202 body: the event's messages, then its reminders (standing ones first)."""
    return BookingEventAccepted(
        event_id=event.event_id,
        messages=[
            EventMessage(
                id=m.id,
                role=m.role or "",
                to=m.to,
                status=m.status,
                reason=m.reason,
                encoding=m.encoding,
                segments=m.segments,
                credits=m.credits,
            )
            for m in messages
        ],
        reminders=[describe(m, created=False) for m in standing.values()]
        + [describe(m, created=created) for m, created in reminders],
    )


async def _replay_winner(
    session: AsyncSession, client_id: str, event_id: str, digest: str
) -> BookingEventAccepted:
    """Drop this attempt and answer with the concurrent duplicate's committed record."""
    await session.rollback()
    existing = await _recorded(session, client_id, event_id)
    if existing is None:  # pragma: no cover - the winner rolled back
        raise Problem(
            409, "event-in-progress", "Event is being processed", "Retry the request."
        ) from None
    return _replay(existing, digest)


async def _recorded(session: AsyncSession, client_id: str, event_id: str) -> BookingEvent | None:
    return await session.scalar(
        select(BookingEvent).where(
            BookingEvent.client_id == client_id, BookingEvent.event_id == event_id
        )
    )


async def _record(
    session: AsyncSession,
    client_id: str,
    event: BookingEventIn,
    digest: str,
    answer: BookingEventAccepted,
) -> bool:
    """Write the idempotency record with its answer; False if the event id is taken."""
    insert = upsert_for(session)
    claimed = await session.scalar(
        insert(BookingEvent)
        .values(
            client_id=client_id,
            event_id=event.event_id,
            event_type=event.type,
            booking_id=event.booking.id,
            body_hash=digest,
            response=answer.model_dump(mode="json"),
            created_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["client_id", "event_id"])
        .returning(BookingEvent.id)
    )
    return claimed is not None


def _replay(existing: BookingEvent, digest: str) -> BookingEventAccepted:
    if existing.body_hash != digest:
        raise Problem(
            409,
            "event-id-conflict",
            "Event id already used",
            "This event_id was already accepted with a different body.",
        )
    return BookingEventAccepted.model_validate(existing.response)


async def _message_for(
    session: AsyncSession,
    runtime: Runtime,
    client_id: str,
    event: BookingEventIn,
    role: str,
    recipients: RecipientMemo,
) -> Message:
    settings = runtime.settings
    party: Party | None = getattr(event, role)
    assert party is not None  # guaranteed by BookingEventIn's validator
    other: Party | None = event.offeror if role == "asker" else event.asker
    recipient = await resolve_party(session, settings, client_id, party, memo=recipients)
    booking = event.booking
    message_id = new_message_id()
    reply_code: str | None = None
    if event.type == "booking.requested" and role == "offeror" and recipient.refusal is None:
        request, show_code = await open_request(
            session,
            client_id=client_id,
            booking_id=booking.id,
            title=booking.title,
            user_ref=party.user_ref,
            number=recipient.to,
            expires_at=booking.expires_at,
            message_id=message_id,
        )
        reply_code = request.code if show_code else None
    sms = BookingSms(
        client_id=client_id,
        event_id=event.event_id,
        event_type=event.type,
        role=role,
        booking=booking,
        party=party,
        other=other,
        recipient=recipient,
    )
    return await booking_message(
        session,
        runtime,
        sms,
        Timing(send_at=event.send_at),
        message_id=message_id,
        reply_code=reply_code,
    )
