"""Creating, reading and cancelling messages."""

from __future__ import annotations

import base64
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import and_, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from smsgateway.context import current_request_id
from smsgateway.db import utcnow
from smsgateway.encoding import analyse
from smsgateway.errors import Problem
from smsgateway.messages.lifecycle import cancel_queued
from smsgateway.messages.recipients import Recipient
from smsgateway.messages.schedule import after_quiet_hours
from smsgateway.models.messages import Message, new_message_id, provider_tag_for
from smsgateway.models.status import Status
from smsgateway.runtime import Runtime

NOTIFY_CHANNEL = "smsgw_messages"


def build_message(
    runtime: Runtime,
    *,
    client_id: str,
    recipient: Recipient,
    text: str,
    send_at: datetime | None = None,
    no_stop_clause: bool = True,
    message_id: str | None = None,
    kind: str = "transactional",
    due_at: datetime | None = None,
    quiet_hours: bool = False,
    **fields: str | None,
) -> Message:
    """A new message row with its encoding, parts and price worked out.

    A refused recipient gives a final ``blocked`` or ``rejected`` row that costs
    nothing; anything else is ``queued`` and due at ``due_at`` (a time the
    caller worked out: pacing, marketing hours), else ``send_at``, else now;
    with ``quiet_hours`` that moment is moved out of the recipient's quiet hours.
    """
    smart = runtime.settings.templates.smart_encoding
    parts = analyse(text, stop_clause=not no_stop_clause, smart=smart)
    now = utcnow()
    due = due_at or send_at or now
    if quiet_hours:
        due = after_quiet_hours(due, recipient.to, runtime.settings)
    status, reason, credits, cost = _priced(runtime, recipient, parts.segments)
    validity = timedelta(hours=runtime.settings.dispatch.message_validity_hours)
    message_id = message_id or new_message_id()
    return Message(
        id=message_id,
        client_id=client_id,
        to=recipient.to,
        country=recipient.country,
        text=parts.text,
        status=status,
        reason=reason,
        encoding=parts.encoding.value,
        segments=parts.segments,
        credits=credits,
        cost=cost,
        no_stop_clause=no_stop_clause,
        send_at=send_at,
        due_at=due if status == Status.QUEUED else None,
        attempts=0,
        uncertain=False,
        provider_tag=provider_tag_for(message_id),
        created_at=now,
        updated_at=now,
        final_at=None if status == Status.QUEUED else now,
        request_id=current_request_id(),
        kind=kind,
        quiet_hours=quiet_hours,
        # From when it may go: a message held by quiet hours is not stale at 8:00.
        valid_until=due + validity if status == Status.QUEUED else None,
        **fields,
    )


def _priced(
    runtime: Runtime, recipient: Recipient, segments: int
) -> tuple[str, str | None, Decimal, Decimal]:
    """Status, reason, credits and cost of a new message: a refused one costs nothing."""
    if recipient.refusal is not None:
        status, reason = recipient.refusal
        return status, reason, Decimal(0), Decimal(0)
    price = runtime.pricing.price(recipient.country, segments)
    return Status.QUEUED.value, None, price.credits, price.cost


async def announce_queued(session: AsyncSession, runtime: Runtime) -> None:
    """Tell workers in other processes that work is due (sent on commit)."""
    if runtime.is_postgres:
        await session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": NOTIFY_CHANNEL})


async def get_message(session: AsyncSession, client_id: str, message_id: str) -> Message:
    message = await session.get(Message, message_id)
    if message is None or message.client_id != client_id:
        raise Problem(
            404,
            "message-not-found",
            "Message not found",
            f"No message {message_id!r} for this client.",
        )
    return message


def _encode_cursor(message: Message) -> str:
    raw = f"{message.created_at.isoformat()}|{message.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        created, message_id = base64.urlsafe_b64decode(cursor.encode()).decode().split("|", 1)
        created_at = datetime.fromisoformat(created)
        # Our cursors carry an offset; a naive time would fail in the query instead (a 500).
        if created_at.utcoffset() is None:
            raise ValueError("cursor time without offset")
        return created_at, message_id
    except (ValueError, UnicodeDecodeError) as exc:
        raise Problem(
            400, "invalid-cursor", "Invalid cursor", "Use the next_cursor of a previous page."
        ) from exc


async def list_messages(
    session: AsyncSession,
    client_id: str,
    *,
    status: str | None,
    tag: str | None,
    booking_id: str | None,
    limit: int,
    cursor: str | None,
    campaign_id: str | None = None,
) -> tuple[list[Message], str | None]:
    """Newest first, ``limit`` at a time, continuing after ``cursor``."""
    query = select(Message).where(Message.client_id == client_id)
    if campaign_id:
        query = query.where(Message.campaign_id == campaign_id)
    if status:
        query = query.where(Message.status == status)
    if tag:
        query = query.where(Message.tag == tag)
    if booking_id:
        query = query.where(Message.booking_id == booking_id)
    if cursor:
        created, last_id = _decode_cursor(cursor)
        query = query.where(
            or_(
                Message.created_at < created,
                and_(Message.created_at == created, Message.id < last_id),
            )
        )
    query = query.order_by(Message.created_at.desc(), Message.id.desc()).limit(limit + 1)
    rows = list((await session.scalars(query)).all())
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (_encode_cursor(rows[-1]) if more and rows else None)


async def cancel_message(session: AsyncSession, client_id: str, message_id: str) -> bool:
    """Cancel a message not sent yet. True if it ended now; False if the cancel is pending.

    A message OVHcloud may have (being sent, or being looked up after a lost
    answer) is cancelled once it is known not to have gone: it is never sent
    again. One that has gone or ended is a 409.
    """
    message = await get_message(session, client_id, message_id)
    if await cancel_queued(session, message_id, reason="cancelled"):
        await session.refresh(message)
        return True
    await session.refresh(message)
    if message.settle_to is not None and message.status in (Status.QUEUED, Status.SENDING):
        return False  # cancelled, or blocked by a STOP first: either way never sent again
    raise Problem(
        409,
        "not-cancellable",
        "Message can no longer be cancelled",
        f"The message is {message.status}.",
        status_value=message.status,
    )


def system_message(
    runtime: Runtime,
    *,
    client_id: str,
    to: str,
    country: str | None,
    text: str,
    event_type: str,
    language: str | None = None,
    booking_id: str | None = None,
) -> Message:
    """A text the gateway owes a user on its own (a STOP confirmation, how to answer).

    It goes even to an opted-out or unverified number, and is not charged to
    the client's quota: the user asked for it, the client did not.
    """
    recipient = Recipient(to=to, country=country, language=language, refusal=None)
    message = build_message(
        runtime,
        client_id=client_id,
        recipient=recipient,
        text=text,
        event_type=event_type,
        language=language,
        booking_id=booking_id,
    )
    # Not charged to the client's quota (nothing was reserved): it counts for nothing there.
    message.credits, message.cost = Decimal(0), Decimal(0)
    return message
