"""``GET /v1/account``: the calling client's credits and its usage over a date range.

Usage counts the messages accepted for sending: ``rejected`` and ``blocked``
ones were never sendable and ``cancelled`` ones were never sent, so none of
them count. Their credits are what the client is charged: each counted
message's credits less what was refunded for it (a message OVHcloud reported
"not billed", or one that failed before the provider took it, counts with 0).
Days are UTC days of the message's creation, and a refund counts on the day of
its message, so a day's figure only ever goes down as reports arrive.
Unlimited clients are charged nothing and have no refunds, so their credits
are those of the messages sent.

The sums are computed by the database, grouped by a UTC date expression
written for each backend (SQLite stores UTC as naive text).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlalchemy import ColumnElement, and_, func, literal_column, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from smsgateway.clients.auth import ClientDep
from smsgateway.clients.schemas import AccountOut, DayUsage, TagUsage, Usage, UsageTotals
from smsgateway.db import utcnow
from smsgateway.errors import PROBLEM_JSON, Problem
from smsgateway.models.clients import CreditEntry
from smsgateway.models.messages import Message
from smsgateway.models.status import Status
from smsgateway.scope import SessionDep

router = APIRouter(prefix="/v1/account", tags=["account"])

DEFAULT_DAYS = 30
MAX_DAYS = 366
NOT_COUNTED = (Status.REJECTED.value, Status.BLOCKED.value, Status.CANCELLED.value)

_PROBLEM: dict[str, Any] = {"content": {PROBLEM_JSON: {}}}


def utc_day(column: Any, dialect: str) -> ColumnElement[Any]:
    """The UTC calendar day of a ``UTCDateTime`` column, in SQL."""
    if dialect == "postgresql":
        # A literal, not a bound parameter: GROUP BY must repeat the SELECT expression exactly.
        return func.date(func.timezone(literal_column("'UTC'"), column))
    return func.date(column)


def _as_date(value: date | str) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def _credits(value: Decimal | float | int | None) -> Decimal:
    return Decimal(str(value or 0)).quantize(Decimal("0.0001"))


async def usage(session: AsyncSession, client_id: str, first: date, last: date) -> Usage:
    """Messages and credits per UTC day and per tag, from ``first`` to ``last`` inclusive."""
    refund = aliased(CreditEntry)
    start = datetime.combine(first, time.min, tzinfo=UTC)
    end = datetime.combine(last + timedelta(days=1), time.min, tzinfo=UTC)
    day = utc_day(Message.created_at, session.get_bind().dialect.name).label("day")
    messages = func.count(Message.id).label("messages")
    charged = func.sum(Message.credits - func.coalesce(refund.delta, 0)).label("credits")
    base = (
        select(messages, charged)
        .select_from(Message)
        .outerjoin(refund, and_(refund.message_id == Message.id, refund.kind == "refund"))
        .where(
            Message.client_id == client_id,
            Message.created_at >= start,
            Message.created_at < end,
            Message.status.not_in(NOT_COUNTED),
        )
    )
    by_day = [
        DayUsage(date=_as_date(row.day), messages=row.messages, credits=_credits(row.credits))
        for row in await session.execute(base.add_columns(day).group_by(day).order_by(day))
    ]
    by_tag = [
        TagUsage(tag=row.tag, messages=row.messages, credits=_credits(row.credits))
        for row in await session.execute(base.add_columns(Message.tag).group_by(Message.tag))
    ]
    by_tag.sort(key=lambda t: (-t.credits, t.tag is not None, t.tag or ""))
    totals = UsageTotals(
        messages=sum(d.messages for d in by_day),
        credits=sum((d.credits for d in by_day), Decimal(0)),
    )
    return Usage(from_=first, to=last, totals=totals, by_day=by_day, by_tag=by_tag)


def _range(first: date | None, last: date | None) -> tuple[date, date]:
    last = last or utcnow().date()
    first = first or last - timedelta(days=DEFAULT_DAYS - 1)
    if first > last:
        raise Problem(
            422,
            "validation-error",
            "Request validation failed",
            "'from' is after 'to'.",
            errors=[{"field": "query.from", "message": "must not be after 'to'"}],
        )
    if (last - first).days + 1 > MAX_DAYS:
        raise Problem(
            422,
            "validation-error",
            "Request validation failed",
            f"The range covers more than {MAX_DAYS} days.",
            errors=[{"field": "query.from", "message": f"at most {MAX_DAYS} days before 'to'"}],
        )
    return first, last


@router.get(
    "",
    response_model=AccountOut,
    responses={
        401: {"description": "Missing or invalid API key", **_PROBLEM},
        422: {"description": "Bad date, 'from' after 'to', or over 366 days", **_PROBLEM},
    },
    summary="Credits left and usage",
)
async def account(
    client: ClientDep,
    session: SessionDep,
    from_: Annotated[
        date | None,
        Query(alias="from", description="First UTC day (default: 29 days before `to`)"),
    ] = None,
    to: Annotated[date | None, Query(description="Last UTC day (default: today)")] = None,
) -> AccountOut:
    """The calling client's quota, credits left and alert threshold, and its usage
    (messages accepted for sending, and the credits charged for them) per UTC day
    and per tag. `rejected`, `blocked` and `cancelled` messages do not count, and
    refunded credits are subtracted. At most 366 days at once."""
    first, last = _range(from_, to)
    await session.refresh(client)  # the balance as it is now, not as a cache saw it
    return AccountOut(
        id=client.id,
        name=client.name,
        quota=client.quota,
        credits_left=client.balance,
        alert_threshold=client.alert_threshold,
        usage=await usage(session, client.id, first, last),
    )
