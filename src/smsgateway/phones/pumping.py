"""Verification SMS cannot be pumped: bounded per number and per client, every hour.

A verification SMS goes to a number nobody has proven yet, which is what SMS
pumping abuses: many registrations of one premium or attacker-owned number,
under fresh ``user_ref``s, by one client or several. At most
``SMSGW_VERIFICATION_PER_NUMBER_PER_HOUR`` (3) go to one number in an hour,
all user_refs and clients together, and at most
``SMSGW_VERIFICATION_PER_CLIENT_PER_HOUR`` (200) for one client. Past either,
the request is a ``429`` with ``Retry-After`` (when the oldest of the hour's
SMS leaves the window) and nothing is stored or sent. The hour is the
database's; the count is of the SMS themselves, so a DELETE and a new PUT do
not reset it.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from smsgateway.config import VerificationSettings
from smsgateway.db import utcnow
from smsgateway.errors import Problem
from smsgateway.models.messages import Message

VERIFICATION_EVENT = "phone.verification"
HOUR = timedelta(hours=1)


async def check_verification_limits(
    session: AsyncSession, settings: VerificationSettings, client_id: str, e164: str
) -> None:
    """A 429 problem when one more verification SMS would pass a limit."""
    now = utcnow()
    since = now - HOUR
    recent = select(func.count(), func.min(Message.created_at)).where(
        Message.event_type == VERIFICATION_EVENT, Message.created_at > since
    )
    for condition, limit, what in (
        (Message.to == e164, settings.per_number_per_hour, "this number"),
        (Message.client_id == client_id, settings.per_client_per_hour, "this client"),
    ):
        count, oldest = (await session.execute(recent.where(condition))).one()
        if count >= limit:
            raise _limited(what, limit, oldest, now)


def _limited(what: str, limit: int, oldest: datetime | None, now: datetime) -> Problem:
    wait = (oldest + HOUR - now).total_seconds() if oldest is not None else 60.0
    return Problem(
        429,
        "verification-limit",
        "Too many verification SMS",
        f"At most {limit} verification SMS an hour go to {what}; nothing was sent.",
        headers={"Retry-After": str(max(1, math.ceil(wait)))},
    )
