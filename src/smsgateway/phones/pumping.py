"""Verification SMS cannot be pumped: bounded per number and per client, every hour.

A verification SMS goes to a number nobody has proven yet, which is what SMS
pumping abuses: many registrations of one premium or attacker-owned number,
under fresh ``user_ref``s, by one client or several. At most
``SMSGW_VERIFICATION_PER_NUMBER_PER_HOUR`` (3) go to one number in an hour,
all user_refs and clients together, and at most
``SMSGW_VERIFICATION_PER_CLIENT_PER_HOUR`` (200) for one client. Past either,
the request is a ``429`` with ``Retry-After`` (when the oldest of the hour's
SMS leaves the window) and nothing is stored or sent. The hour is the
database's; the count is of the SMS sent, by a key of the number (kept a day),
so neither a DELETE and a new PUT nor an erasure resets it.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from smsgateway.config import VerificationSettings
from smsgateway.db import advisory_lock, utcnow
from smsgateway.errors import Problem
from smsgateway.models.phones import VerificationSend
from smsgateway.numbers import receiver_key

VERIFICATION_EVENT = "phone.verification"
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


async def check_verification_limits(
    session: AsyncSession, settings: VerificationSettings, client_id: str, e164: str
) -> None:
    """Count one more verification SMS, or a 429 problem when it would pass a limit.

    Counted from ``verification_sends`` (a key of the number, kept when the
    number is erased), under a lock per number on PostgreSQL, so concurrent
    registrations of one number take turns.
    """
    key = receiver_key(e164)
    await advisory_lock(session, f"verify:{key}")
    now = utcnow()
    recent = select(func.count(), func.min(VerificationSend.created_at)).where(
        VerificationSend.created_at > now - HOUR
    )
    for condition, limit, what in (
        (VerificationSend.number_key == key, settings.per_number_per_hour, "this number"),
        (VerificationSend.client_id == client_id, settings.per_client_per_hour, "this client"),
    ):
        count, oldest = (await session.execute(recent.where(condition))).one()
        if count >= limit:
            raise _limited(what, limit, oldest, now)
    session.add(VerificationSend(number_key=key, client_id=client_id, created_at=now))
    await session.execute(delete(VerificationSend).where(VerificationSend.created_at < now - DAY))


def _limited(what: str, limit: int, oldest: datetime | None, now: datetime) -> Problem:
    wait = (oldest + HOUR - now).total_seconds() if oldest is not None else 60.0
    return Problem(
        429,
        "verification-limit",
        "Too many verification SMS",
        f"At most {limit} verification SMS an hour go to {what}; nothing was sent.",
        headers={"Retry-After": str(max(1, math.ceil(wait)))},
    )
