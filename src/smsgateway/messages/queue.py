"""The queue as the dispatcher sees it: what a claim hands over, how it is grouped into
provider jobs, and when the next is due.

The claim itself is a status move (``lifecycle.claim``): due ``queued``
messages, and ``sending`` ones whose lease ran out, become ``sending`` under a
fresh lease in one statement (``workers.claim``: concurrent workers take
disjoint sets).
"""

from __future__ import annotations

import math
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
    due_at: datetime | None = None


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
    Message.due_at,
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


def group_jobs(claimed: list[Claimed], max_receivers: int, now: datetime) -> list[list[Claimed]]:
    """Messages that can share one provider job: same text and options, distinct numbers.

    Uncertain messages and those past their validity go alone: each is looked
    up or expired on its own. Oldest due first, whatever order the claim
    returned them in, so a job is headed (and tagged) by its oldest message.
    """
    jobs: list[list[Claimed]] = []
    open_jobs: dict[tuple[str, bool], list[Claimed]] = {}
    for message in sorted(claimed, key=lambda m: (m.due_at or now, m.id)):
        if message.uncertain or (message.valid_until is not None and message.valid_until <= now):
            jobs.append([message])
            continue
        key = (message.text, message.no_stop_clause)
        current = open_jobs.get(key)
        if (
            current is None
            or len(current) >= max_receivers
            or any(m.to == message.to for m in current)
        ):
            current = []
            open_jobs[key] = current
            jobs.append(current)
        current.append(message)
    return jobs


def minutes_left(job: list[Claimed], now: datetime) -> int | None:
    """Whole minutes until the first of the job's messages runs out of validity."""
    ends = [m.valid_until for m in job if m.valid_until is not None]
    if not ends:
        return None
    return max(1, math.ceil((min(ends) - now).total_seconds() / 60))
