"""Turning a booking event into messages, exactly once per ``event_id``."""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from smsgateway.clients.credits import reserve
from smsgateway.clients.models import ApiClient
from smsgateway.errors import Problem
from smsgateway.events.models import BookingEvent
from smsgateway.events.requests import close_requests, open_request
from smsgateway.events.schemas import BookingEventAccepted, BookingEventIn, EventMessage, Party
from smsgateway.messages.models import Message, new_message_id
from smsgateway.messages.service import announce_queued, build_message
from smsgateway.messages.states import Status
from smsgateway.phones.service import resolve_recipient
from smsgateway.runtime import Runtime
from smsgateway.templates.defaults import RECIPIENTS, offered_placeholders
from smsgateway.templates.render import clip, first_name, format_when, reply_words
from smsgateway.templates.service import find_template

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
    messages = [
        await _message_for(session, runtime, client, event, role) for role in RECIPIENTS[event.type]
    ]
    session.add_all(messages)
    await reserve(session, client_id, messages)
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
    )
    record.response = answer.model_dump(mode="json")
    if any(m.status == Status.QUEUED for m in messages):
        await announce_queued(session, runtime)
    await session.commit()
    runtime.wakeup.set()
    log.info("event accepted type=%s messages=%d", event.type, len(messages))
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
    recipient = await resolve_recipient(
        session,
        client_id=client.id,
        user_ref=party.user_ref,
        phone=party.phone,
        require_verified=settings.require_verified_phone,
        default_region=settings.default_region,
    )
    template = await find_template(
        session, event.type, role, party.language or recipient.language, settings.default_language
    )
    language = template.language
    yes, no = reply_words(language)
    booking = event.booking
    offered = offered_placeholders(event.type, role)
    message_id = new_message_id()
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
        if show_code:
            yes, no = f"{yes} {request.code}", f"{no} {request.code}"
    values: dict[str, Any] = {
        # Clipped to the declared maximum, so a template's worst case holds.
        "booking_title": clip(booking.title, offered["booking_title"]),
        "other_name": first_name(other.name) if other else "",
        "recipient_name": first_name(party.name),
        "starts_at": format_when(booking.starts_at, language) if booking.starts_at else "",
        "expires_at": format_when(booking.expires_at, language) if booking.expires_at else "",
        "reply_yes": yes,
        "reply_no": no,
    }
    return build_message(
        runtime,
        client_id=client.id,
        recipient=recipient,
        text=template.render(values),
        send_at=event.send_at,
        no_stop_clause=True,
        message_id=message_id,
        event_id=event.event_id,
        event_type=event.type,
        booking_id=booking.id,
        role=role,
        user_ref=party.user_ref,
        language=language,
    )
