"""Reminders the gateway schedules from booking events, and cancels when they stop making sense.

* ``booking.accepted`` with ``starts_at`` schedules ``booking.starting_soon`` for
  each party the event names, ``SMSGW_REMINDER_LEAD_HOURS`` before the start.
* ``booking.requested`` with ``expires_at`` schedules ``booking.expiring_soon``
  for the offeror, ``SMSGW_EXPIRY_REMINDER_LEAD_HOURS`` before the expiry.
* ``booking.cancelled``, ``booking.refused`` and ``booking.expired`` cancel the
  booking's reminders still queued (their credits come back);
  ``booking.accepted`` cancels its ``booking.expiring_soon`` one (the request is
  answered).
* A ``booking.starting_soon`` or ``booking.expiring_soon`` event posted by the
  marketplace sends nothing to a role whose reminder is queued or sent already.

Reminders are written in the event's transaction, so they are exactly as
durable as the event. Each carries a ``reminder_key`` (type, role, time,
booking), unique per client: a replayed or repeated event, even one posted
twice at the same moment, schedules it once. A new ``starts_at`` is a new key:
the queued reminder for the old time is cancelled and one for the new time
scheduled.

Reminders are not urgent: they keep out of the recipient's quiet hours. One
that would then go after the moment it reminds of goes the minute before quiet
hours began instead, and is not scheduled at all when that has passed too (or
when its own time has).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import cast

from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncSession

from smsgateway.booking import RECIPIENTS
from smsgateway.config import Settings
from smsgateway.db import upsert_for, utcnow
from smsgateway.events.booking_sms import (
    BookingSms,
    RecipientMemo,
    Timing,
    booking_message,
    resolve_party,
)
from smsgateway.events.schemas import BookingEventIn, EventReminder, Party
from smsgateway.messages.lifecycle import cancel_queued
from smsgateway.messages.schedule import after_quiet_hours, before_quiet_hours
from smsgateway.models.messages import Message
from smsgateway.models.status import Status
from smsgateway.runtime import Runtime

REMINDER = "reminder"
STARTING_SOON = "booking.starting_soon"
EXPIRING_SOON = "booking.expiring_soon"
REMINDER_TYPES = frozenset({STARTING_SOON, EXPIRING_SOON})

# What each event cancels among the booking's queued reminders.
_CANCELS: dict[str, frozenset[str]] = {
    "booking.cancelled": REMINDER_TYPES,
    "booking.refused": REMINDER_TYPES,
    "booking.expired": REMINDER_TYPES,
    "booking.accepted": frozenset({EXPIRING_SOON}),
}
# A reminder in one of these is "scheduled or sent": it stands in for a *_soon event.
_LIVE = (Status.QUEUED, Status.SENDING, Status.SUBMITTED, Status.DELIVERED)


@dataclass(frozen=True, slots=True)
class _Plan:
    event_type: str
    at: datetime  # the reminder's own time
    deadline: datetime  # the moment it reminds of


def reminder_due(
    at: datetime, deadline: datetime, number: str, settings: Settings, now: datetime
) -> datetime | None:
    """When a reminder meant for ``at`` goes, or None when it should not be scheduled.

    Out of the recipient's quiet hours and before ``deadline``: the end of quiet
    hours if that is still before it, else the minute before they began;
    None once the chosen moment has passed.
    """
    if at <= now:
        return None
    later = after_quiet_hours(at, number, settings)
    if later == at or later < deadline:
        return later
    earlier = before_quiet_hours(at, number, settings)
    return earlier if earlier > now else None


def _plan(event: BookingEventIn, settings: Settings) -> _Plan | None:
    booking = event.booking
    if event.type == "booking.accepted" and booking.starts_at is not None:
        lead = timedelta(hours=settings.reminders.lead_hours)
        return _Plan(STARTING_SOON, booking.starts_at - lead, booking.starts_at)
    if event.type == "booking.requested" and booking.expires_at is not None:
        lead = timedelta(hours=settings.reminders.expiry_lead_hours)
        return _Plan(EXPIRING_SOON, booking.expires_at - lead, booking.expires_at)
    return None


def reminder_key(event_type: str, role: str, at: datetime, booking_id: str) -> str:
    return f"{event_type}|{role}|{at.astimezone(UTC).isoformat()}|{booking_id}"


async def booking_messages(session: AsyncSession, client_id: str, booking_id: str) -> list[Message]:
    """The booking's messages so far, oldest first: what an event's reminders are decided on.

    Read once per event (a booking has a handful); the steps below filter it.
    """
    rows = await session.scalars(
        select(Message)
        .where(Message.client_id == client_id, Message.booking_id == booking_id)
        .order_by(Message.created_at)
    )
    return list(rows.all())


async def schedule_reminders(
    session: AsyncSession,
    runtime: Runtime,
    client_id: str,
    event: BookingEventIn,
    known: list[Message],
    *,
    recipients: RecipientMemo | None = None,
    refunds: list[str] | None = None,
) -> list[tuple[Message, bool]]:
    """Insert the reminders ``event`` calls for; each with whether it was created now.

    ``known`` is ``booking_messages`` (less what this event cancelled). A
    reminder that exists already (a repeated event) comes back with False.
    The caller reserves the new ones' credits with the event's own messages.
    """
    settings = runtime.settings
    plan = _plan(event, settings) if settings.reminders.enabled else None
    if plan is None:
        return []
    now = utcnow()
    booking = event.booking
    scheduled: list[tuple[Message, bool]] = []
    for role in RECIPIENTS[plan.event_type]:
        party: Party | None = getattr(event, role)
        if party is None:
            continue  # booking.accepted need not name the offeror
        key = reminder_key(plan.event_type, role, plan.at, booking.id)
        # The booking moved: the reminder for its old time goes, whatever comes next.
        await cancel_reminders(
            session, known, [plan.event_type], role=role, keep=key, refunds=refunds
        )
        recipient = await resolve_party(session, settings, client_id, party, memo=recipients)
        if recipient.refusal is not None:
            continue  # the event's own message already says why this number gets nothing
        due = reminder_due(plan.at, plan.deadline, recipient.to, settings, now)
        if due is None:
            continue
        if _sent_by_marketplace(known, plan.event_type, role):
            continue
        sms = BookingSms(
            client_id=client_id,
            event_id=event.event_id,
            event_type=plan.event_type,
            role=role,
            booking=booking,
            party=party,
            other=event.offeror if role == "asker" else event.asker,
            recipient=recipient,
        )
        timing = Timing(
            send_at=plan.at, kind=REMINDER, due_at=due, quiet_hours=True, reminder_key=key
        )
        entry = await _reminder(session, runtime, known, sms, timing)
        if entry is not None:
            scheduled.append(entry)
    return scheduled


async def _reminder(
    session: AsyncSession,
    runtime: Runtime,
    known: list[Message],
    sms: BookingSms,
    timing: Timing,
) -> tuple[Message, bool] | None:
    """The reminder with ``timing.reminder_key``: the one known, else inserted now."""
    key = timing.reminder_key
    existing = next((m for m in known if m.reminder_key == key), None)
    if existing is not None:
        return existing, False
    message = await booking_message(session, runtime, sms, timing)
    if await _insert_once(session, message):
        return message, True
    # A concurrent twin of this event scheduled it first.
    existing = await session.scalar(
        select(Message).where(Message.client_id == sms.client_id, Message.reminder_key == key)
    )
    return (existing, False) if existing is not None else None


async def cancel_for(
    session: AsyncSession,
    event: BookingEventIn,
    known: list[Message],
    *,
    refunds: list[str] | None = None,
) -> None:
    """Cancel the booking's queued reminders that ``event`` makes pointless."""
    types = _CANCELS.get(event.type)
    if types:
        await cancel_reminders(session, known, types, refunds=refunds)


async def cancel_reminders(
    session: AsyncSession,
    known: list[Message],
    event_types: Iterable[str],
    *,
    role: str | None = None,
    keep: str | None = None,
    refunds: list[str] | None = None,
) -> None:
    """Cancel queued reminders among ``known`` (one role's, all but ``keep``) and refund them.

    Those cancelled leave ``known``. Their key is cleared, so the same
    reminder can be scheduled again if the booking comes back; a reminder
    the client cancelled itself keeps its key and is not revived by a
    repeated event. ``refunds``: see ``messages.lifecycle.settle_queued``.
    """
    types = set(event_types)
    doomed = [
        m
        for m in known
        if m.kind == REMINDER
        and m.event_type in types
        and m.status == Status.QUEUED.value
        and (role is None or m.role == role)
        and (keep is None or m.reminder_key != keep)
    ]
    for message in doomed:
        known.remove(message)
        # The cancel writes the reminder's one ``message.status`` webhook.
        await cancel_queued(
            session,
            message.id,
            reason="booking_changed",
            values={"reminder_key": None},
            refunds=refunds,
        )


def standing_reminders(event: BookingEventIn, known: list[Message]) -> dict[str, Message]:
    """For a ``*_soon`` event: by role, the reminder already scheduled or sent for it."""
    if event.type not in REMINDER_TYPES:
        return {}
    live = {s.value for s in _LIVE}
    standing: dict[str, Message] = {}
    for m in known:  # oldest first: the newest of a role wins, as before
        if m.kind == REMINDER and m.event_type == event.type and m.status in live and m.role:
            standing[m.role] = m
    return standing


def describe(message: Message, *, created: bool) -> EventReminder:
    return EventReminder.model_validate(
        {
            "id": message.id,
            "type": message.event_type,
            "role": message.role,
            "to": message.to,
            "status": message.status,
            "send_at": message.send_at,
            "due_at": message.due_at,
            "segments": message.segments,
            "credits": message.credits,
            "created": created,
        }
    )


def _sent_by_marketplace(known: list[Message], event_type: str, role: str) -> bool:
    """Whether the marketplace already posted this text itself (then no reminder)."""
    live = {s.value for s in _LIVE}
    return any(
        m.kind != REMINDER and m.event_type == event_type and m.role == role and m.status in live
        for m in known
    )


async def _insert_once(session: AsyncSession, message: Message) -> bool:
    """Insert unless a reminder with the same key exists (a concurrent twin included)."""
    table = cast(Table, Message.__table__)
    values = {
        column.name: getattr(message, attr.key)
        for attr in Message.__mapper__.column_attrs
        for column in attr.columns
        if attr.key in message.__dict__
    }
    insert = upsert_for(session)
    inserted = await session.scalar(
        insert(table)
        .values(values)
        .on_conflict_do_nothing(index_elements=["client_id", "reminder_key"])
        .returning(table.c.id)
    )
    return inserted is not None
