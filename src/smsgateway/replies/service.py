"""Acting on an incoming SMS: verify a number, opt it out or in, answer a booking.

One handler for both ways SMS come in (OVHcloud's push and polling): each SMS
is stored once (unique provider id), read (see ``keywords``), and acted on in
the same transaction, with the webhooks that report it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from smsgateway.db import upsert_for, utcnow
from smsgateway.messages.lifecycle import lift_pending, settle_queued
from smsgateway.messages.service import announce_queued, system_message
from smsgateway.models.callbacks import IncomingMessage
from smsgateway.models.clients import ApiClient
from smsgateway.models.events import BookingRequest
from smsgateway.models.messages import Message
from smsgateway.models.phones import NumberState
from smsgateway.models.status import Status
from smsgateway.numbers import InvalidNumber, mask, normalise
from smsgateway.phones.registry import registrations_for
from smsgateway.phones.verification import verify_by_reply
from smsgateway.providers.base import IncomingSms
from smsgateway.replies.keywords import Keyword, Reading, read
from smsgateway.runtime import Runtime
from smsgateway.texts import system_text
from smsgateway.webhooks.service import enqueue

log = logging.getLogger(__name__)

# Replies reach OVHcloud's short numbers from French mobiles: read national
# numbers as French when no default region is configured.
REPLY_REGION = "FR"

# Ids given to pushed SMS that came without one (a hash of their content).
HASH_ID_PREFIX = "h:"
_SAME_SMS_WINDOW = timedelta(minutes=10)


@dataclass
class _Sender:
    number: str
    country: str | None


async def handle_incoming(
    session: AsyncSession, runtime: Runtime, sms: IncomingSms, *, provider: str
) -> str | None:
    """Store ``sms`` and act on it. Returns the outcome, or None for a replay."""
    insert = upsert_for(session)
    stored_id = await session.scalar(
        insert(IncomingMessage)
        .values(
            provider=provider,
            provider_id=sms.provider_id[:80],
            sender=sms.sender[:32],
            text=sms.text[:1600],
            received_at=(sms.received_at or None),
            created_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["provider", "provider_id"])
        .returning(IncomingMessage.id)
    )
    if stored_id is None:
        return None
    if await _seen_without_id(session, stored_id, sms):
        outcome = "duplicate"
        await session.execute(
            update(IncomingMessage).where(IncomingMessage.id == stored_id).values(outcome=outcome)
        )
        return outcome
    reading = read(sms.text)
    request_id: int | None = None
    try:
        parsed = normalise(sms.sender, runtime.settings.locale.default_region or REPLY_REGION)
    except InvalidNumber:
        outcome = "invalid_sender"
    else:
        sender = _Sender(parsed.e164, parsed.country)
        outcome, request_id = await _act(session, runtime, sender, reading, sms.text)
    await session.execute(
        update(IncomingMessage)
        .where(IncomingMessage.id == stored_id)
        .values(
            keyword=reading.keyword.value if reading.keyword else None,
            outcome=outcome,
            booking_request_id=request_id,
        )
    )
    log.info("incoming SMS from %s: %s -> %s", mask(sms.sender), reading.keyword, outcome)
    return outcome


async def _seen_without_id(session: AsyncSession, stored_id: int, sms: IncomingSms) -> bool:
    """Whether this SMS was already handled under another id.

    A push without an id is stored under a hash of its content, so the same
    SMS read again by polling (with OVHcloud's id) would not collide with it:
    the same sender and text within a few minutes, one of them without an
    id, is taken as one SMS.
    """
    since = utcnow() - _SAME_SMS_WINDOW
    query = select(IncomingMessage.provider_id).where(
        IncomingMessage.id != stored_id,
        IncomingMessage.sender == sms.sender[:32],
        IncomingMessage.text == sms.text[:1600],
        IncomingMessage.created_at >= since,
    )
    if not sms.provider_id.startswith(HASH_ID_PREFIX):
        query = query.where(IncomingMessage.provider_id.startswith(HASH_ID_PREFIX))
    return (await session.scalar(query.limit(1))) is not None


async def _act(
    session: AsyncSession, runtime: Runtime, sender: _Sender, reading: Reading, text: str
) -> tuple[str, int | None]:
    if reading.keyword == Keyword.STOP:
        changed = await opt_out(session, runtime, sender.number, source="reply", confirm=True)
        return ("opted_out" if changed else "already_opted_out"), None
    if reading.keyword == Keyword.START:
        changed = await opt_in(session, runtime, sender.number, source="reply")
        return ("opted_in" if changed else "not_opted_out"), None
    if reading.keyword in (Keyword.YES, Keyword.NO):
        if reading.keyword == Keyword.YES and reading.code is None:
            verified = await verify_by_reply(session, sender.number)
            if verified:
                return "verified", None
        return await answer_booking(session, runtime, sender, reading, text)
    known = await session.scalar(select(Message.id).where(Message.to == sender.number).limit(1))
    return ("unrecognised" if known else "unknown_sender"), None


# -- opt-out ------------------------------------------------------------------


async def opt_out(
    session: AsyncSession, runtime: Runtime, number: str, *, source: str, confirm: bool
) -> bool:
    """Stop every SMS to ``number``, for every client. True if it was not opted out yet.

    Messages still queued for it are blocked and refunded; at most one
    confirmation is sent (only the call that flips the flag sends it).
    """
    now = utcnow()
    await _ensure_state(session, number)
    flipped = await session.execute(
        update(NumberState)
        .where(NumberState.number == number, NumberState.opted_out_at.is_(None))
        .values(opted_out_at=now, opted_in_at=None, updated_at=now)
    )
    if not flipped.rowcount:  # type: ignore[attr-defined]
        return False
    await settle_queued(
        session,
        Message.to == number,
        status=Status.BLOCKED,
        reason="opted_out",
        refund_reason="opted out before sending",
    )
    await _notify_clients(session, number, "phone.opted_out", source)
    if confirm:
        await _send_system(
            session, runtime, number, "stop_confirmation", event_type="phone.stop_confirmation"
        )
    log.info("number %s opted out (%s)", mask(number), source)
    return True


async def opt_in(session: AsyncSession, runtime: Runtime, number: str, *, source: str) -> bool:
    """Undo an opt-out. True if the number was opted out."""
    now = utcnow()
    flipped = await session.execute(
        update(NumberState)
        .where(NumberState.number == number, NumberState.opted_out_at.is_not(None))
        .values(opted_out_at=None, opted_in_at=now, updated_at=now)
    )
    if not flipped.rowcount:  # type: ignore[attr-defined]
        return False
    await lift_pending(session, Message.to == number, reason="opted_out")
    await _notify_clients(session, number, "phone.opted_in", source)
    await _send_system(
        session, runtime, number, "start_confirmation", event_type="phone.start_confirmation"
    )
    log.info("number %s opted back in (%s)", mask(number), source)
    return True


async def _ensure_state(session: AsyncSession, number: str) -> None:
    insert = upsert_for(session)
    await session.execute(
        insert(NumberState)
        .values(number=number, updated_at=utcnow())
        .on_conflict_do_nothing(index_elements=["number"])
    )


async def _notify_clients(session: AsyncSession, number: str, event_type: str, source: str) -> None:
    for registration in await registrations_for(session, number):
        client = await session.get(ApiClient, registration.client_id)
        if client is not None:
            enqueue(
                session,
                client,
                event_type,
                {"user_ref": registration.user_ref, "phone": number, "source": source},
            )


# -- answering booking requests ----------------------------------------------


async def answer_booking(
    session: AsyncSession, runtime: Runtime, sender: _Sender, reading: Reading, text: str
) -> tuple[str, int | None]:
    """Accept or refuse the request a YES/NO names, or explain how to answer."""
    now = utcnow()
    live = await _live_requests(session, sender.number, now)
    if reading.code is not None:
        target = next((r for r in live if r.code == reading.code), None)
    else:
        target = live[0] if len(live) == 1 else None
    if target is None:
        if len(live) > 1:
            await _send_system(
                session,
                runtime,
                sender.number,
                "ambiguous",
                event_type="booking.reply_help",
                code=live[0].code,
            )
            return "ambiguous", None
        answered_before = await session.scalar(
            select(BookingRequest.id).where(BookingRequest.number == sender.number).limit(1)
        )
        if answered_before is None:
            return "no_request", None
        await _send_system(
            session, runtime, sender.number, "no_open_request", event_type="booking.reply_help"
        )
        return "expired_reply", None
    decision = "accepted" if reading.keyword == Keyword.YES else "refused"
    target.status = decision
    target.decided_at = now
    client = await session.get(ApiClient, target.client_id)
    assert client is not None
    enqueue(
        session,
        client,
        "booking.reply",
        {
            "booking_id": target.booking_id,
            "decision": decision,
            "user_ref": target.user_ref,
            "text": text,
            "code": target.code,
        },
    )
    return decision, target.id


async def _live_requests(session: AsyncSession, number: str, now: datetime) -> list[BookingRequest]:
    """The number's open requests, oldest first; those past their expiry are marked expired."""
    open_requests = list(
        (
            await session.scalars(
                select(BookingRequest)
                .where(BookingRequest.number == number, BookingRequest.status == "open")
                .order_by(BookingRequest.created_at)
            )
        ).all()
    )
    live = []
    for request in open_requests:
        if request.expires_at is not None and request.expires_at <= now:
            request.status = "expired"
        else:
            live.append(request)
    return live


async def _send_system(
    session: AsyncSession,
    runtime: Runtime,
    number: str,
    name: str,
    *,
    event_type: str,
    **values: str,
) -> None:
    """Queue a system text to ``number``, paid by the client that last texted it.

    Nothing goes to an opted-out or suspended number, except the STOP
    confirmation itself.
    """
    if name != "stop_confirmation":
        state = await session.get(NumberState, number)
        if state is not None and (state.opted_out_at or state.suspended_at):
            return
    last = (
        await session.execute(
            select(Message.client_id, Message.language, Message.country)
            .where(Message.to == number)
            .order_by(Message.created_at.desc())
            .limit(1)
        )
    ).first()
    if last is None:
        registrations = await registrations_for(session, number)
        if not registrations:
            return  # nobody ever texted this number: nothing to confirm
        client_id, language, country = registrations[0].client_id, registrations[0].language, None
    else:
        client_id, language, country = last
    text = system_text(name, language, runtime.settings.locale.default_language, **values)
    session.add(
        system_message(
            runtime,
            client_id=client_id,
            to=number,
            country=country,
            text=text,
            event_type=event_type,
            language=language,
        )
    )
    await announce_queued(session, runtime)
