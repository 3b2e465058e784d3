"""Dates the API accepts: aware, within sane years, and a schedule not too far ahead.

Every date a client sends (``send_at``, a booking's ``starts_at`` and
``expires_at``) is a ``Moment``: a time with its offset (kept: texts show
times in the offset the marketplace sent) that, in UTC, falls between
``EARLIEST`` and ``LATEST``. Out of that range it is a ``422``
naming the field, never a 500 from a date that cannot be stored or computed
with (year 9999 at ``-14:00`` is past year 9999 in UTC). How far ahead a send
may be scheduled is a setting (``SMSGW_MAX_SCHEDULE_DAYS``): ``check_schedule``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime

from smsgateway.db import utcnow
from smsgateway.errors import Problem

EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)


def within_bounds(value: datetime) -> datetime:
    """``value``, unchanged, if in UTC it falls in [2000, 2100); else a ``ValueError``."""
    try:
        moment = value.astimezone(UTC)
    except OverflowError:
        moment = None
    if moment is None or not EARLIEST <= moment < LATEST:
        raise ValueError("must be a time between 2000-01-01 and 2099-12-31 (UTC)")
    return value


Moment = Annotated[AwareDatetime, AfterValidator(within_bounds)]


def check_schedule(
    send_at: datetime | None,
    max_days: float,
    *,
    now: datetime | None = None,
    field: str = "body.send_at",
) -> None:
    """Refuse, as a 422 naming ``field``, a send scheduled more than ``max_days`` ahead."""
    if send_at is None or send_at <= (now or utcnow()) + timedelta(days=max_days):
        return
    message = f"must be at most {max_days:g} days ahead"
    raise Problem(
        422,
        "validation-error",
        "Request validation failed",
        f"'{field}' {message}.",
        errors=[{"field": field, "message": message}],
    )
