"""Creating, reading and cancelling messages."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import ColumnElement, and_, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from smsgateway.clients.credits import refund
from smsgateway.context import current_request_id
from smsgateway.db import utcnow
from smsgateway.encoding import analyse
from smsgateway.errors import Problem
from smsgateway.messages.notify import status_changed
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
    parts = analyse(
        text, stop_clause=not no_stop_clause, smart=runtime.settings.templates.smart_encoding
    )
    now = utcnow()
    due = due_at or send_at or now
    if quiet_hours:
        due = after_quiet_hours(due, recipient.to, runtime.settings)
    if recipient.refusal is None:
        status, reason = Status.QUEUED.value, None
        price = runtime.pricing.price(recipient.country, parts.segments)
        credits, cost = price.credits, price.cost
    else:
        status, reason = recipient.refusal
        credits, cost = Decimal(0), Decimal(0)
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
        valid_until=(
            # From when it may go: a message held by quiet hours is not stale at 8:00.
            due + timedelta(hours=runtime.settings.dispatch.message_validity_hours)
            if status == Status.QUEUED
            else None
        ),
        **fields,
    )


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


async def cancel_message(session: AsyncSession, client_id: str, message_id: str) -> Message:
    """Cancel a message no worker has taken yet; anything further along is a 409."""
    message = await get_message(session, client_id, message_id)
    if message.uncertain:
        raise Problem(
            409,
            "not-cancellable",
            "Message can no longer be cancelled",
            "The provider may already have it: it is being looked up.",
            status_value=message.status,
        )
    if not await cancel_queued(session, message_id, reason="cancelled"):
        await session.refresh(message)
        raise Problem(
            409,
            "not-cancellable",
            "Message can no longer be cancelled",
            f"The message is {message.status}.",
            status_value=message.status,
        )
    await session.refresh(message)
    return message


async def cancel_queued(
    session: AsyncSession,
    message_id: str,
    *,
    reason: str,
    refunds: list[str] | None = None,
    **values: object,
) -> bool:
    """Cancel the message if it is still ``queued`` (see ``settle_queued``); False if not.

    ``values`` are further columns to set; ``refunds`` as for ``settle_queued``.
    """
    settled = await settle_queued(
        session,
        Message.id == message_id,
        status=Status.CANCELLED,
        reason=reason,
        refund_reason=reason,
        values=values,
        refunds=refunds,
    )
    return bool(settled)


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


async def settle_queued(
    session: AsyncSession,
    *where: ColumnElement[bool],
    status: Status,
    reason: str,
    refund_reason: str,
    notify: bool = True,
    values: Mapping[str, object] | None = None,
    refunds: list[str] | None = None,
) -> list[str]:
    """End the ``queued`` messages matching ``where`` as ``status`` (cancelled, blocked).

    Only rows still queued at the update are touched (a worker may have taken
    some since). Their credits come back, except for an *uncertain* message:
    its SMS may already have gone, and been billed. Returns the ids settled.

    With ``refunds``, the ids to refund are appended to it for the caller to
    refund (``credits.refund``) later in the transaction instead: the refund
    locks the client's balance row, which a booking event takes last of all.
    """
    now = utcnow()
    rows = (
        await session.execute(
            update(Message)
            .where(Message.status == Status.QUEUED.value, *where)
            .values(
                status=status.value,
                reason=reason,
                due_at=None,
                updated_at=now,
                final_at=now,
                **(values or {}),
            )
            .returning(Message.id, Message.uncertain)
            .execution_options(synchronize_session=False)
        )
    ).all()
    for message_id, uncertain in rows:
        if uncertain:
            pass
        elif refunds is not None:
            refunds.append(message_id)
        else:
            await refund(session, message_id, refund_reason)
        if notify:
            await status_changed(session, message_id)
    return [message_id for message_id, _ in rows]
