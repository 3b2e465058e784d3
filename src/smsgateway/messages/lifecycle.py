"""Every change of a message's status goes through here.

Each move is one guarded ``UPDATE``: the statuses a message may leave for the
new one come from the state machine's own table (``models.status.TRANSITIONS``)
and sit in the statement's ``WHERE``, so a row that has moved on meanwhile
(another worker, a delivery report, a cancel) is left as it is. A move the
table does not hold is a programming error and raises.

The ``message.status`` webhook is written here and only here, in the same
transaction, once for each row the statement really moved: never for a move
that did not happen, never twice for one. The marketplace hears of the
statuses in ``NOTIFIED``; ``sending`` and a retry's way back to ``queued`` are
the gateway's own business; a campaign cancel is told as the campaign's, not
per message (see ``settle_queued``). Each move it hears of adds one to the message's
``status_sequence``, sent as ``data.sequence``: sorted by it, a message's
webhooks follow the state machine even when they arrive out of order.

The moves, by name: ``claim``, ``finish_attempt`` (submitted, retry,
uncertain, failed, expired before sending), ``apply_report``, ``settle_queued``
(cancel, block, campaign cancel), ``expire_unreported``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, case, func, or_, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import ReturningUpdate

from smsgateway.credits.refunds import refund
from smsgateway.db import utcnow
from smsgateway.messages.queue import CLAIMED_COLUMNS, Claimed
from smsgateway.models.clients import ApiClient
from smsgateway.models.messages import Message
from smsgateway.models.status import FINAL, TRANSITIONS, Status, can_move, moves_forward
from smsgateway.webhooks.service import enqueue
from smsgateway.workers.claim import claim_rows

NOTIFIED = FINAL | {Status.SUBMITTED}


def sources(to: Status) -> list[str]:
    """The statuses the table lets become ``to``."""
    return [current.value for current, nexts in TRANSITIONS.items() if to in nexts]


@dataclass(frozen=True, slots=True)
class Moved:
    """A row a move changed, as it is after the move."""

    id: str
    uncertain: bool
    settle_to: str | None
    settle_reason: str | None


async def _move(
    session: AsyncSession,
    where: ColumnElement[bool],
    to: Status,
    values: Mapping[str, object],
    *,
    origin: Sequence[Status] | None = None,
    notify: bool = True,
) -> list[Moved]:
    """Move the rows matching ``where`` to ``to``; the rows moved.

    ``origin`` narrows the statuses moved from; each must be allowed by the table.
    """
    allowed = sources(to)
    if origin is not None:
        wrong = [s.value for s in origin if not can_move(s, to)]
        if wrong:
            raise ValueError(f"a message cannot move from {wrong} to {to.value}")
        allowed = [s.value for s in origin]
    told = to in NOTIFIED
    if told:
        values = {**values, "status_sequence": Message.status_sequence + 1}
    if to in NOTIFIED:  # taken by the provider, or ended: nothing left to settle
        values = {**values, "settle_to": None, "settle_reason": None}
    rows = (
        await session.execute(
            update(Message)
            .where(Message.status.in_(allowed), where)
            .values(status=to.value, updated_at=utcnow(), **values)
            .returning(*_MOVED_COLUMNS, Message.client_id)
            .execution_options(synchronize_session=False)
        )
    ).all()
    if notify and told:
        for row in rows:
            await _status_changed(session, row.id, row.client_id)
    return [Moved(row.id, row.uncertain, row.settle_to, row.settle_reason) for row in rows]


_MOVED_COLUMNS = (
    Message.id,
    Message.uncertain,
    Message.settle_to,
    Message.settle_reason,
)


async def _status_changed(session: AsyncSession, message_id: str, client_id: str) -> None:
    """Write a ``message.status`` event for the message's new status (same transaction)."""
    client = await session.get(ApiClient, client_id)  # once per client and transaction
    if client is None or not client.webhook_url:
        return
    message = await session.get(Message, message_id, populate_existing=True)
    if message is None:
        return
    enqueue(
        session,
        client,
        "message.status",
        {
            "message_id": message.id,
            "status": message.status,
            "sequence": message.status_sequence,
            "reason": message.reason,
            "to": message.to,
            "booking_id": message.booking_id,
            "event_type": message.event_type,
            "role": message.role,
            "tag": message.tag,
            "provider_id": message.provider_id,
            "at": utcnow().isoformat(),
        },
    )


# -- the dispatcher's moves ----------------------------------------------------


async def claim(
    session: AsyncSession, *, worker: str, now: datetime, lease: timedelta, limit: int
) -> list[Claimed]:
    """Lease up to ``limit`` due messages to ``worker`` (``queued`` → ``sending``).

    A ``sending`` message whose lease ran out (its worker died or stalled) is
    taken over as well. It may already have reached the provider, so the
    claim marks it ``uncertain`` from the end of the old lease: the dispatcher
    looks it up at the provider before sending it again, and waits the settle
    time from then. The caller commits.
    """
    due = or_(
        and_(Message.status == Status.QUEUED.value, Message.due_at <= now),
        and_(Message.status == Status.SENDING.value, Message.lease_until < now),
    )
    taken_over = Message.status == Status.SENDING.value
    statement = (
        claim_rows(
            Message.id, due, order_by=Message.due_at, limit=limit, name="due_messages", recheck=due
        )
        .values(
            status=Status.SENDING.value,
            uncertain=case((taken_over, True), else_=Message.uncertain),
            # The settle time restarts from the old lease's end: its holder's send
            # could reach the provider until then, never later (Delivery._call).
            uncertain_since=case((taken_over, Message.lease_until), else_=Message.uncertain_since),
            lease_owner=worker,
            lease_until=now + lease,
            attempts=Message.attempts + 1,
            updated_at=now,
        )
        .returning(*CLAIMED_COLUMNS)
    )
    rows = (await session.execute(statement)).all()
    return [Claimed(**row._mapping) for row in rows]


async def finish_attempt(
    session: AsyncSession,
    message_id: str,
    *,
    worker: str,
    to: Status,
    values: Mapping[str, object],
    refund_reason: str | None = None,
    notify: bool = True,
) -> bool:
    """End ``worker``'s attempt: ``sending`` → ``to`` (a retry is ``queued``).

    Only while the worker still holds the lease: one that lost it can never
    overwrite what the new holder did. ``refund_reason``: the SMS was not
    billed, so its credits come back. False if the lease was lost.

    A message going back to the queue is checked again in this transaction:
    a cancel or block that came during the attempt (a cancel, a STOP, a
    suspension, its booking settled: see ``settle_queued``) ends it here
    rather than at a later attempt; unless the provider may have it
    (uncertain), when the look-up decides first.
    """
    moved = await _move(
        session,
        and_(Message.id == message_id, Message.lease_owner == worker),
        to,
        {"lease_owner": None, "lease_until": None, **values},
        origin=[Status.SENDING],
        notify=notify,
    )
    if moved and refund_reason:
        await refund(session, message_id, refund_reason)
    if moved and to == Status.QUEUED and not moved[0].uncertain:
        await _settle_pending(session, moved[0])
    return bool(moved)


async def _settle_pending(session: AsyncSession, message: Moved) -> None:
    """End a message back in the queue whose cancel or block came during its attempt."""
    if message.settle_to is None:
        return
    reason = message.settle_reason or message.settle_to
    await settle_queued(
        session,
        Message.id == message.id,
        status=Status(message.settle_to),
        reason=reason,
        refund_reason=f"{reason} before sending",
    )


# -- moves from outside the dispatcher -----------------------------------------


async def apply_report(
    session: AsyncSession, message_id: str, to: Status, values: Mapping[str, object]
) -> bool:
    """A delivery report moves the message on; never backwards, never out of a final status.

    Only statuses ranked below ``to`` are moved from: a late "pending" after
    "delivered" changes nothing. True if the message moved.
    """
    origin = [s for s in TRANSITIONS if moves_forward(s, to)]
    return bool(await _move(session, Message.id == message_id, to, values, origin=origin))


async def expire_unreported(session: AsyncSession, message_id: str) -> bool:
    """A ``submitted`` message whose report never came ends ``expired``."""
    now = utcnow()
    values = {"reason": "no_delivery_report", "final_at": now}
    moved = await _move(
        session, Message.id == message_id, Status.EXPIRED, values, origin=[Status.SUBMITTED]
    )
    return bool(moved)


async def settle_queued(
    session: AsyncSession,
    *where: ColumnElement[bool],
    status: Status,
    reason: str,
    refund_reason: str,
    values: Mapping[str, object] | None = None,
    refunds: list[str] | None = None,
    pending: list[str] | None = None,
    notify: bool = True,
) -> list[str]:
    """End the messages matching ``where`` that have not gone as ``status`` (cancelled, blocked).

    One statement, so that a message is judged as it is when its row is
    locked, whatever a worker does meanwhile:

    - ``queued`` ones end now and their credits come back;
    - those the provider may have (being sent, or *uncertain*) keep their
      status and get the settlement pending (``settle_to``): it is applied
      when their attempt ends without the provider having taken them, or
      when the look-up does not find them; if the provider has them, they
      run their course.

    Returns the ids ended now; ``pending`` collects those marked. With
    ``refunds``, the ids ended are appended to it for the caller to refund
    (``credits.refund``) later in the transaction instead: the refund locks
    the client's balance row, which a booking event takes last of all.
    ``notify`` False: no ``message.status`` webhook for those ended now (a
    campaign cancel is one act of the client's, not news about each message).
    """
    if not can_move(Status.QUEUED, status):
        raise ValueError(f"a queued message cannot be settled as {status.value}")
    statement = _settle_or_mark(and_(*where), status, reason, values or {}, told=notify)
    rows = (await session.execute(statement)).all()
    settled = [row for row in rows if row.status == status.value]
    if pending is not None:
        pending.extend(row.id for row in rows if row.status != status.value)
    for row in settled:
        if refunds is not None:
            refunds.append(row.id)
        else:
            await refund(session, row.id, refund_reason)
        if notify:
            await _status_changed(session, row.id, row.client_id)
    return [row.id for row in settled]


async def lift_pending(session: AsyncSession, *where: ColumnElement[bool], reason: str) -> None:
    """Drop the pending settlements ``reason`` of the messages matching ``where``.

    A START after a STOP that came during an attempt, an unsuspended number:
    what would have blocked the message no longer holds.
    """
    await session.execute(
        update(Message)
        .where(
            Message.status.in_([Status.QUEUED.value, Status.SENDING.value]),
            Message.settle_reason == reason,
            *where,
        )
        .values(settle_to=None, settle_reason=None)
        .execution_options(synchronize_session=False)
    )


def _settle_or_mark(
    where: ColumnElement[bool],
    status: Status,
    reason: str,
    values: Mapping[str, object],
    *,
    told: bool,
) -> ReturningUpdate[str, str, str]:
    """``settle_queued``'s statement: end the queued, mark those the provider may have."""
    now = utcnow()
    pending = or_(Message.status == Status.SENDING.value, Message.uncertain.is_(True))

    def unless_pending(new: object, kept: object) -> ColumnElement[object]:
        return case((pending, kept), else_=new)

    return (
        update(Message)
        .where(Message.status.in_([Status.QUEUED.value, Status.SENDING.value]), where)
        .values(
            status=unless_pending(status.value, Message.status),
            reason=unless_pending(reason, Message.reason),
            due_at=unless_pending(None, Message.due_at),
            final_at=unless_pending(now, Message.final_at),
            status_sequence=unless_pending(
                Message.status_sequence + int(told), Message.status_sequence
            ),
            settle_to=unless_pending(None, func.coalesce(Message.settle_to, status.value)),
            settle_reason=unless_pending(None, func.coalesce(Message.settle_reason, reason)),
            updated_at=now,
            **values,
        )
        .returning(Message.id, Message.status, Message.client_id)
        .execution_options(synchronize_session=False)
    )


async def cancel_queued(
    session: AsyncSession,
    message_id: str,
    *,
    reason: str,
    values: Mapping[str, object] | None = None,
    refunds: list[str] | None = None,
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
