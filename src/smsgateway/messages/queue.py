"""The queue as the dispatcher sees it: what a claim hands over, and when the next is due.

The claim itself is a status move (``lifecycle.claim``): due ``queued``
messages, and ``sending`` ones whose lease ran out, become ``sending`` under a
fresh lease in one statement (``workers.claim``: concurrent workers take
disjoint sets).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from smsgateway.models.messages import Message
from smsgateway.models.status import Status


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
    settle_to: str | None = None


# The columns a claim returns, in ``Claimed``'s order.
CLAIMED_COLUMNS = (
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
    Message.settle_to,
)


async def next_due_in(session: AsyncSession, now: datetime) -> float | None:
    """Seconds until the earliest queued message is due (None: nothing queued)."""
    earliest = await session.scalar(
        select(func.min(Message.due_at)).where(Message.status == Status.QUEUED.value)
    )
    if earliest is None:
        return None
    wait: float = (earliest - now).total_seconds()
    return max(0.0, wait)
