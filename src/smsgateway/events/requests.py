"""Booking requests an offeror may answer by SMS: opened by events, closed by events.

Each open request of a number has a short code (a letter and a digit) so
that replies can name it; the SMS shows the code only when the number has
several requests open at once.
"""

from __future__ import annotations

import random
from datetime import datetime

from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from smsgateway.db import upsert_for, utcnow
from smsgateway.models.events import BookingRequest
from smsgateway.replies.keywords import CODE_DIGITS, CODE_LETTERS


async def open_request(
    session: AsyncSession,
    *,
    client_id: str,
    booking_id: str,
    title: str,
    user_ref: str,
    number: str,
    expires_at: datetime | None,
    message_id: str,
) -> tuple[BookingRequest, bool]:
    """Record a request the offeror may answer by reply.

    Returns the request and whether its code must be shown (the number has
    other requests open, so a bare YES would be ambiguous).
    """
    now = utcnow()
    code, shared = await _pick_code(session, client_id, booking_id, number, now)
    values = {
        "title": title[:200],
        "user_ref": user_ref,
        "number": number,
        "code": code,
        "status": "open",
        "expires_at": expires_at,
        "message_id": message_id,
        "decided_at": None,
    }
    # An upsert, so two events for the same booking arriving together both
    # land (the later one wins) instead of one failing on the unique index.
    insert = upsert_for(session)
    request = await session.scalar(
        insert(BookingRequest)
        .values(client_id=client_id, booking_id=booking_id, created_at=now, **values)
        .on_conflict_do_update(index_elements=["client_id", "booking_id"], set_=values)
        .returning(BookingRequest),
        execution_options={"populate_existing": True},
    )
    assert request is not None
    return request, shared


async def _pick_code(
    session: AsyncSession, client_id: str, booking_id: str, number: str, now: datetime
) -> tuple[str, bool]:
    """The request's code, and whether the number has other requests open (codes taken)."""
    # One read: the number's other open requests (their codes are taken) and
    # this booking's own request, if any (it keeps its code when still free).
    rows = (
        await session.scalars(
            select(BookingRequest).where(
                or_(
                    and_(
                        BookingRequest.number == number,
                        BookingRequest.status == "open",
                        BookingRequest.booking_id != booking_id,
                    ),
                    and_(
                        BookingRequest.client_id == client_id,
                        BookingRequest.booking_id == booking_id,
                    ),
                )
            )
        )
    ).all()
    own = next((r for r in rows if (r.client_id, r.booking_id) == (client_id, booking_id)), None)
    live_codes = {
        r.code
        for r in rows
        if r is not own
        and r.number == number
        and r.status == "open"
        and (r.expires_at is None or r.expires_at > now)
    }
    code = own.code if own is not None and own.code not in live_codes else _new_code(live_codes)
    return code, bool(live_codes)


async def close_requests(session: AsyncSession, client_id: str, booking_id: str) -> None:
    """A later event settled the booking: a reply can no longer decide it."""
    await session.execute(
        update(BookingRequest)
        .where(
            BookingRequest.client_id == client_id,
            BookingRequest.booking_id == booking_id,
            BookingRequest.status == "open",
        )
        .values(status="closed", decided_at=utcnow())
    )


def _new_code(taken: set[str]) -> str:
    free = [f"{a}{d}" for a in CODE_LETTERS for d in CODE_DIGITS if f"{a}{d}" not in taken]
    return random.choice(free)  # noqa: S311 - a label, not a secret
