"""A booking SMS: shared by event messages and the reminders they schedule.

A reminder is the same SMS the marketplace would get by posting
``booking.starting_soon`` itself, so both go through these steps: pick the
party's number (and whether it may be texted), render the (type, role)
template in the party's language with the booking's values, and build the
message; only its timing (and ``kind``) differs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from smsgateway.config import Settings
from smsgateway.events.schemas import Booking, Party
from smsgateway.messages.recipients import Recipient, resolve_recipient
from smsgateway.messages.service import build_message
from smsgateway.models.clients import ApiClient
from smsgateway.models.messages import Message
from smsgateway.runtime import Runtime
from smsgateway.templates.defaults import offered_placeholders
from smsgateway.templates.render import clip, first_name, format_when, reply_words
from smsgateway.templates.service import find_template

# Recipients already resolved for one event, by (user_ref, phone): a party's
# message and its reminder need the same look-up.
RecipientMemo = dict[tuple[str | None, str | None], Recipient]


@dataclass(frozen=True)
class BookingSms:
    """Whom one booking SMS goes to and what it is about."""

    client_id: str
    event_id: str
    event_type: str
    role: str
    booking: Booking
    party: Party
    # The booking's other party, whose first name the text may carry.
    other: Party | None
    recipient: Recipient


@dataclass(frozen=True)
class Timing:
    """When a booking SMS goes: an event's own message at ``send_at``, or a reminder."""

    send_at: datetime | None
    kind: str = "transactional"
    due_at: datetime | None = None
    quiet_hours: bool = False
    reminder_key: str | None = None


async def resolve_party(
    session: AsyncSession,
    settings: Settings,
    client_id: str,
    party: Party,
    *,
    memo: RecipientMemo | None = None,
) -> Recipient:
    """The party's number: the one given, else the registered one; with its refusal."""
    key = (party.user_ref, party.phone)
    if memo is not None and key in memo:
        return memo[key]
    client = await session.get(ApiClient, client_id)  # in the session already: no query
    countries = client.countries(settings.api.default_allowed_countries) if client else frozenset()
    recipient = await resolve_recipient(
        session,
        client_id=client_id,
        user_ref=party.user_ref,
        phone=party.phone,
        require_verified=settings.verification.required,
        default_region=settings.locale.default_region,
        allowed_types=settings.locale.allowed_types,
        countries=countries,
    )
    if memo is not None:
        memo[key] = recipient
    return recipient


async def booking_message(
    session: AsyncSession,
    runtime: Runtime,
    sms: BookingSms,
    timing: Timing,
    *,
    message_id: str | None = None,
    reply_code: str | None = None,
) -> Message:
    """The message for one party of a booking event (or a reminder of one).

    ``reply_code`` is added to the reply words when the offeror has several
    requests open and a bare YES would not say which one it answers.
    """
    template = await find_template(
        session,
        sms.event_type,
        sms.role,
        sms.party.language or sms.recipient.language,
        runtime.settings.locale.default_language,
        cache=runtime.template_cache,
    )
    language = template.language
    return build_message(
        runtime,
        client_id=sms.client_id,
        recipient=sms.recipient,
        text=template.render(_values(sms, language, reply_code)),
        send_at=timing.send_at,
        no_stop_clause=True,  # booking texts are transactional: no STOP mention
        message_id=message_id,
        kind=timing.kind,
        due_at=timing.due_at,
        quiet_hours=timing.quiet_hours,
        event_id=sms.event_id,
        event_type=sms.event_type,
        booking_id=sms.booking.id,
        role=sms.role,
        user_ref=sms.party.user_ref,
        language=language,
        reminder_key=timing.reminder_key,
    )


def _values(sms: BookingSms, language: str, reply_code: str | None) -> dict[str, Any]:
    """The placeholders' values, in the template's language."""
    yes, no = reply_words(language)
    if reply_code:
        yes, no = f"{yes} {reply_code}", f"{no} {reply_code}"
    offered = offered_placeholders(sms.event_type, sms.role)
    booking, other = sms.booking, sms.other
    return {
        # Clipped to the declared maximum, so a template's worst case holds.
        "booking_title": clip(booking.title, offered["booking_title"]),
        "other_name": first_name(other.name) if other else "",
        "recipient_name": first_name(sms.party.name),
        "starts_at": format_when(booking.starts_at, language) if booking.starts_at else "",
        "expires_at": format_when(booking.expires_at, language) if booking.expires_at else "",
        "reply_yes": yes,
        "reply_no": no,
    }
