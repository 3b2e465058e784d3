"""Who a message can go to: the number to use and whether it may be sent.

It reads the phone registry and the numbers' own state (opt-out, suspension) but
imports nothing from ``phones``: the registry sends its verification SMS through
``messages``, so resolution lives here, below it.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from smsgateway.models.phones import NumberState, UserPhone
from smsgateway.numbers import InvalidNumber, PhoneNumber, sendable


@dataclass(frozen=True, slots=True)
class Recipient:
    """A resolved recipient. ``refusal`` is None when the message may be sent."""

    to: str  # E.164 when valid, else what the caller gave (for their records)
    country: str | None
    language: str | None  # from the registry, when the caller gave none
    refusal: tuple[str, str] | None  # (status, reason): ("rejected", "invalid_phone"), ...


async def resolve_recipient(
    session: AsyncSession,
    *,
    client_id: str,
    user_ref: str | None,
    phone: str | None,
    require_verified: bool,
    default_region: str | None,
    allowed_types: frozenset[str] = frozenset(),
    countries: frozenset[str] = frozenset(),
) -> Recipient:
    """Pick the number for a user and decide whether it may be texted.

    Order of refusals: no usable number (``rejected``), then the number's own
    state for every client (``opted_out``, ``suspended``), then verification.
    """
    if phone is not None and user_ref is not None:
        try:
            number = sendable(phone, default_region, allowed_types, countries)
        except InvalidNumber:
            pass
        else:
            return await _resolve_given(
                session, client_id, user_ref, number, require_verified=require_verified
            )
    registered = None
    if user_ref is not None:
        registered = await session.scalar(
            select(UserPhone).where(
                UserPhone.client_id == client_id, UserPhone.user_ref == user_ref
            )
        )
    raw = phone if phone is not None else (registered.number if registered else None)
    language = registered.language if registered else None
    if raw is None:
        return Recipient("", None, language, ("rejected", "no_phone"))
    try:
        number = sendable(raw, default_region, allowed_types, countries)
    except InvalidNumber as exc:
        return Recipient(raw[:64], None, language, ("rejected", exc.reason))
    state = await session.get(NumberState, number.e164)
    return _decide(
        number,
        language,
        registered=(registered.number, registered.status) if registered else None,
        opted_out=state is not None and state.opted_out_at is not None,
        suspended=state is not None and state.suspended_at is not None,
        require_verified=require_verified,
    )


async def _resolve_given(
    session: AsyncSession,
    client_id: str,
    user_ref: str,
    number: PhoneNumber,
    *,
    require_verified: bool,
) -> Recipient:
    """A valid number and a user both given: decide on both in one query."""
    # The common case, in one round trip: the user's registry entry and the
    # number's own state.
    row = (
        await session.execute(
            select(
                UserPhone.number,
                UserPhone.language,
                UserPhone.status,
                NumberState.opted_out_at,
                NumberState.suspended_at,
            )
            .select_from(select(literal(1).label("one")).subquery())
            .outerjoin(
                UserPhone,
                and_(UserPhone.client_id == client_id, UserPhone.user_ref == user_ref),
            )
            .outerjoin(NumberState, NumberState.number == number.e164)
        )
    ).one()
    return _decide(
        number,
        row.language,
        registered=(row.number, row.status) if row.status is not None else None,
        opted_out=row.opted_out_at is not None,
        suspended=row.suspended_at is not None,
        require_verified=require_verified,
    )


def _decide(
    number: PhoneNumber,
    language: str | None,
    *,
    registered: tuple[str, str] | None,  # the registry's (number, status)
    opted_out: bool,
    suspended: bool,
    require_verified: bool,
) -> Recipient:
    if opted_out:
        return Recipient(number.e164, number.country, language, ("blocked", "opted_out"))
    if suspended:
        return Recipient(number.e164, number.country, language, ("blocked", "suspended"))
    if require_verified and registered != (number.e164, "verified"):
        return Recipient(number.e164, number.country, language, ("blocked", "unverified"))
    return Recipient(number.e164, number.country, language, None)
