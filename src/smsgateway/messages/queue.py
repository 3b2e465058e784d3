"""Claiming due messages so that no two workers ever hold the same one.

A claim moves due ``queued`` messages — and ``sending`` ones whose lease has
run out because their worker died — to ``sending`` under a fresh lease, in
one statement (``workers.claim``: concurrent workers take disjoint sets).

A message taken over from an expired lease may already have reached the
provider, so the claim marks it ``uncertain`` (from now, if not already): the
dispatcher looks it up at the provider before sending it again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from smsgateway.models.messages import Message
from smsgateway.models.status import Status
from smsgateway.workers.claim import claim_rows


@dataclass(frozen=True, slots=True)
class Claimed:
    id: str
    to: str
    text: str
    provider_tag: str
    no_stop_clause: bool
    attempts: int
    uncertain: bool
    uncertain_since: datetime | None
    request_id: str | None
    job_tag: str | None
    valid_until: datetime | None
    event_type: str | None
    client_id: str


async def claim_due(
    session: AsyncSession, *, worker: str, now: datetime, lease: timedelta, limit: int
) -> list[Claimed]:
    """Lease up to ``limit`` due messages to ``worker``. The caller commits."""
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
            uncertain_since=case(
                (
                    Message.status == Status.SENDING.value,
                    func.coalesce(Message.uncertain_since, now),
                ),
                else_=Message.uncertain_since,
            ),
            lease_owner=worker,
            lease_until=now + lease,
            attempts=Message.attempts + 1,
            updated_at=now,
        )
        .returning(
            Message.id,
            Message.to,
            Message.text,
            Message.provider_tag,
            Message.no_stop_clause,
            Message.attempts,
            Message.uncertain,
            Message.uncertain_since,
            Message.request_id,
            Message.job_tag,
            Message.valid_until,
            Message.event_type,
            Message.client_id,
        )
    )
    rows = (await session.execute(statement)).all()
    return [
        Claimed(
            id=row[0],
            to=row[1],
            text=row[2],
            provider_tag=row[3],
            no_stop_clause=row[4],
            attempts=row[5],
            uncertain=row[6],
            uncertain_since=row[7],
            request_id=row[8],
            job_tag=row[9],
            valid_until=row[10],
            event_type=row[11],
            client_id=row[12],
        )
        for row in rows
    ]


async def next_due_in(session: AsyncSession, now: datetime) -> float | None:
    """Seconds until the earliest queued message is due (None: nothing queued)."""
    earliest = await session.scalar(
        select(func.min(Message.due_at)).where(Message.status == Status.QUEUED.value)
    )
    if earliest is None:
        return None
    wait: float = (earliest - now).total_seconds()
    return max(0.0, wait)
