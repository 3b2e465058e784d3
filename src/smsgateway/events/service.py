"""Turning a booking event into messages, exactly once per ``event_id``."""

from __future__ import annotations

import hashlib
import json
import logging

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from smsgateway.clients.credits import reserve
from smsgateway.clients.models import ApiClient
from smsgateway.errors import Problem
from smsgateway.events.models import BookingEvent
from smsgateway.events.reminders import (
    cancel_for,
    describe,
    schedule_reminders,
    standing_reminders,
)
from smsgateway.events.requests import close_requests, open_request
from smsgateway.events.schemas import BookingEventAccepted, BookingEventIn, EventMessage, Party
from smsgateway.events.texts import booking_message, resolve_party
from smsgateway.messages.models import Message, new_message_id
from smsgateway.messages.service import announce_queued
from smsgateway.messages.states import Status
from smsgateway.runtime import Runtime
from smsgateway.templates.defaults import RECIPIENTS

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
    """
    digest = body_hash(event)
    client_id = client.id  # read now: a rollback below expires loaded objects
    existing = await _recorded(session, client_id, event.event_id)
    if existing is not None:
        return _replay(existing, digest), False

    record = BookingEvent(
        client_id=client.id,
        event_id=event.event_id,
        event_type=event.type,
        booking_id=event.booking.id,
        body_hash=digest,
        response={},
    )
    session.add(record)
    try:
        # Claims the event id first, so a concurrent duplicate fails here and
        # not after rendering its messages.
        await session.flush()
    except IntegrityError:
        await session.rollback()
        existing = await _recorded(session, client_id, event.event_id)
        if existing is None:  # pragma: no cover - the winner rolled back
            raise Problem(
                409, "event-in-progress", "Event is being processed", "Retry the request."
            ) from None
        return _replay(existing, digest), False

    if event.type in _SETTLING:
        await close_requests(session, client_id, event.booking.id)
    await cancel_for(session, client_id, event)
    # A role whose reminder is scheduled or sent already gets nothing more.
    standing = await standing_reminders(session, client_id, event)
    messages = [
        await _message_for(session, runtime, client, event, role)
        for role in RECIPIENTS[event.type]
        if role not in standing
    ]
    session.add_all(messages)
    reminders = await schedule_reminders(session, runtime, client_id, event)
    answer = BookingEventAccepted(
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
    record.response = answer.model_dump(mode="json")
    if any(m.status == Status.QUEUED for m in messages):
        await announce_queued(session, runtime)
    # Everything else is written first and the reservation comes last: its UPDATE locks
    # the client's balance row until the commit, and every event of that client waits
    # for that lock (bench/profile.py contention). One reservation: the event is
    # accepted with its new reminders or not at all (402, and all of it rolls back).
    await session.flush()
    await reserve(session, client_id, [*messages, *(m for m, created in reminders if created)])
    await session.commit()
    runtime.wakeup.set()
    log.info(
        "event accepted type=%s messages=%d reminders=%d",
        event.type,
        len(messages),
        len(reminders),
    )
    return answer, True


async def _recorded(session: AsyncSession, client_id: str, event_id: str) -> BookingEvent | None:
    return await session.scalar(
        select(BookingEvent).where(
            BookingEvent.client_id == client_id, BookingEvent.event_id == event_id
        )
    )


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
    session: AsyncSession, runtime: Runtime, client: ApiClient, event: BookingEventIn, role: str
) -> Message:
    settings = runtime.settings
    party: Party | None = getattr(event, role)
    assert party is not None  # guaranteed by BookingEventIn's validator
    other: Party | None = event.offeror if role == "asker" else event.asker
    recipient = await resolve_party(session, settings, client.id, party)
    booking = event.booking
    message_id = new_message_id()
    reply_code: str | None = None
    if event.type == "booking.requested" and role == "offeror" and recipient.refusal is None:
        request, show_code = await open_request(
            session,
            client_id=client.id,
            booking_id=booking.id,
            title=booking.title,
            user_ref=party.user_ref,
            number=recipient.to,
            expires_at=booking.expires_at,
            message_id=message_id,
        )
        reply_code = request.code if show_code else None
    return await booking_message(
        session,
        runtime,
        client_id=client.id,
        event_id=event.event_id,
        event_type=event.type,
        role=role,
        booking=booking,
        party=party,
        other=other,
        recipient=recipient,
        send_at=event.send_at,
        message_id=message_id,
        reply_code=reply_code,
    )
