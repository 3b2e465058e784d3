"""The subscriber list (seed 003) and suspending a number.

A suspension is stored on ``NumberState``, which holds for the number at
every client, exactly like an opt-out: ``resolve_recipient`` already blocks
such numbers for everyone. A client may only suspend or reactivate a number
one of its own users registered.
"""

from __future__ import annotations

import base64
import binascii
import logging
from datetime import datetime

from sqlalchemy import ColumnElement, case, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from smsgateway.db import upsert_for, utcnow
from smsgateway.errors import Problem
from smsgateway.messages.lifecycle import lift_pending, settle_queued
from smsgateway.models.messages import Message
from smsgateway.models.phones import NumberState, UserPhone
from smsgateway.models.status import Status
from smsgateway.numbers import InvalidNumber, mask, normalise
from smsgateway.phones.registry import EffectiveStatus, effective_status

log = logging.getLogger(__name__)


def _effective_column() -> ColumnElement[str]:
    """``effective_status`` in SQL, so ``?status=`` filters before the page is cut."""
    return case(
        (NumberState.opted_out_at.is_not(None), "opted_out"),
        (NumberState.suspended_at.is_not(None), "suspended"),
        else_=UserPhone.status,
    )


async def subscribers(
    session: AsyncSession,
    client_id: str,
    *,
    status: EffectiveStatus | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[tuple[UserPhone, EffectiveStatus]], str | None]:
    """The client's registrations with their effective status, newest first."""
    query = (
        select(UserPhone, NumberState)
        .outerjoin(NumberState, NumberState.number == UserPhone.number)
        .where(UserPhone.client_id == client_id)
    )
    if status is not None:
        query = query.where(_effective_column() == status)
    if cursor:
        query = query.where(UserPhone.id < _decode_cursor(cursor))
    query = query.order_by(UserPhone.id.desc()).limit(limit + 1)
    rows = (await session.execute(query)).all()
    more = len(rows) > limit
    page = [(phone, effective_status(phone, state)) for phone, state in rows[:limit]]
    next_cursor = _encode_cursor(page[-1][0].id) if more and page else None
    return page, next_cursor


def _encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"p{last_id}".encode()).decode()


def _decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor.encode()).decode()
        last_id = int(raw[1:]) if raw.startswith("p") else 0
        if not 0 < last_id < 2**31:  # ids are 32-bit: anything else would fail in the query
            raise ValueError(cursor)
        return last_id
    except (ValueError, UnicodeDecodeError, binascii.Error) as exc:
        raise Problem(
            400, "invalid-cursor", "Invalid cursor", "Use the next_cursor of a previous page."
        ) from exc


def path_number(raw: str) -> str:
    """The E.164 number of a path segment: ``+33…``, ``%2B33…`` (decoded) or ``33…``."""
    text = raw.strip()
    if text[:1].isdigit():
        text = "+" + text
    try:
        return normalise(text).e164
    except InvalidNumber as exc:
        raise Problem(
            422,
            "invalid-phone",
            "Invalid phone number",
            f"{exc}: give the number in E.164 form, e.g. +33601020304.",
            errors=[{"field": "path.number", "message": str(exc)}],
        ) from None


async def set_suspended(
    session: AsyncSession, client_id: str, number: str, *, suspended: bool
) -> NumberState:
    """Suspend (or reactivate) ``number`` for every client; it must be the client's.

    A suspended number gets nothing, from any client: messages still queued
    for it are blocked (reason ``suspended``) and refunded, and later ones are
    stored as ``blocked``. Suspending twice keeps the first time.
    """
    owned = await session.scalar(
        select(UserPhone.id)
        .where(UserPhone.client_id == client_id, UserPhone.number == number)
        .limit(1)
    )
    if owned is None:
        raise Problem(
            404,
            "phone-not-found",
            "Number not registered",
            "None of this client's users registered this number.",
        )
    now = utcnow()
    insert = upsert_for(session)
    await session.execute(
        insert(NumberState)
        .values(number=number, updated_at=now)
        .on_conflict_do_nothing(index_elements=["number"])
    )
    if suspended:
        flipped = await session.execute(
            update(NumberState)
            .where(NumberState.number == number, NumberState.suspended_at.is_(None))
            .values(suspended_at=now, updated_at=now)
        )
        if flipped.rowcount:  # type: ignore[attr-defined]
            await _block_queued(session, number, now)
            log.info("number %s suspended", mask(number))
    else:
        lifted = await session.execute(
            update(NumberState)
            .where(NumberState.number == number, NumberState.suspended_at.is_not(None))
            .values(suspended_at=None, updated_at=now)
        )
        if lifted.rowcount:  # type: ignore[attr-defined]
            await lift_pending(session, Message.to == number, reason="suspended")
    state = await session.get(NumberState, number, populate_existing=True)
    assert state is not None
    return state


async def _block_queued(session: AsyncSession, number: str, now: datetime) -> None:
    await settle_queued(
        session,
        Message.to == number,
        status=Status.BLOCKED,
        reason="suspended",
        refund_reason="number suspended before sending",
    )
