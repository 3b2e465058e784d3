"""The registry of users' numbers: registration and verification (by reply or code).

A registration sends exactly one verification SMS. Trying again means
``DELETE`` then ``PUT`` (seed 000: "if sending or receiving the message fails,
the user will have to delete his phone number and enter it again"), so a
retried ``PUT`` can never text a user twice.

Two ways to verify:

* ``reply``: the SMS asks for YES; the reply reader calls ``verify_by_reply``.
  OVHcloud only carries replies from French mobiles to a short-number sender,
  for 48 hours, so this is only offered where a reply can come back.
* ``code``: the SMS carries a 6-digit code, checked by ``check_code``. Only a
  salted SHA-256 of it is stored, it expires, and a code is tried at most
  ``SMSGW_VERIFICATION_MAX_ATTEMPTS`` times.

Services only flush; the caller commits. The subscriber list and suspension
are in ``phones.subscribers``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from smsgateway.config import Settings
from smsgateway.credits.reservations import reserve
from smsgateway.db import utcnow
from smsgateway.errors import Problem
from smsgateway.messages.lifecycle import settle_queued
from smsgateway.messages.recipients import Recipient
from smsgateway.messages.service import announce_queued, build_message
from smsgateway.models.clients import ApiClient
from smsgateway.models.messages import Message
from smsgateway.models.phones import NumberState, UserPhone
from smsgateway.models.status import Status
from smsgateway.numbers import InvalidNumber, PhoneNumber, country_of, mask, sendable
from smsgateway.phones.codes import hash_code, new_code
from smsgateway.phones.pumping import VERIFICATION_EVENT, check_verification_limits
from smsgateway.runtime import Runtime
from smsgateway.templates.languages import canonical_language
from smsgateway.texts import Method, verification_text

log = logging.getLogger(__name__)

# OVHcloud keeps a reply window of 48 hours after the SMS it answers.
REPLY_WINDOW = timedelta(hours=48)
# Replies reach OVHcloud's short numbers from French mobiles only.
REPLY_COUNTRIES = frozenset({"FR"})

EffectiveStatus = Literal["pending", "verified", "opted_out", "suspended"]


@dataclass(frozen=True, slots=True)
class Registration:
    """A registration as the API shows it. ``created``: new row; ``sent``: SMS queued now."""

    phone: UserPhone
    status: EffectiveStatus
    country: str | None
    created: bool
    sent: bool


def effective_status(phone: UserPhone, state: NumberState | None) -> EffectiveStatus:
    """What holds for the user: the number's own state (any client) before verification."""
    if state is not None and state.opted_out_at is not None:
        return "opted_out"
    if state is not None and state.suspended_at is not None:
        return "suspended"
    return "verified" if phone.status == "verified" else "pending"


def replies_possible(runtime: Runtime, country: str | None) -> bool:
    """Whether a YES can come back: a French number, and a short-number sender."""
    return country in REPLY_COUNTRIES and not runtime.settings.ovh.sender


async def find_registration(session: AsyncSession, client_id: str, user_ref: str) -> UserPhone:
    """The user's registration, or a 404 problem."""
    phone = await _find(session, client_id, user_ref)
    if phone is None:
        raise Problem(
            404,
            "phone-not-found",
            "No registered number",
            "This user has no registered phone number.",
        )
    return phone


async def registration(session: AsyncSession, client_id: str, user_ref: str) -> Registration:
    phone = await find_registration(session, client_id, user_ref)
    return await view(session, phone, created=False, sent=False)


async def register(
    session: AsyncSession,
    runtime: Runtime,
    client: ApiClient,
    *,
    user_ref: str,
    raw_phone: str,
    language: str | None,
    method: Method | None,
) -> Registration:
    """Register ``raw_phone`` for ``user_ref`` and queue its one verification SMS.

    The same number again changes nothing but the language and sends nothing
    (unless no SMS could be sent before, because the number was opted out or
    suspended). Another number, or another method, is a 409: delete first.
    The SMS's credits are reserved here, so a 402 leaves nothing stored.
    """
    settings = runtime.settings
    number = _parse(raw_phone, settings, client.countries(settings.api.default_allowed_countries))
    _check_registrable(runtime, number, method)
    tag = canonical_language(language, field_name="body.language") if language else None
    client_id, service = client.id, settings.verification.service_name or client.name

    existing = await _find(session, client_id, user_ref)
    if existing is None:
        phone = UserPhone(
            client_id=client_id,
            user_ref=user_ref,
            number=number.e164,
            language=tag,
            status="pending",
            method=method or ("reply" if replies_possible(runtime, number.country) else "code"),
            code_attempts=0,
            created_at=utcnow(),
        )
        session.add(phone)
        try:
            await session.flush()  # claims (client, user_ref) before any SMS is built
        except IntegrityError:
            await session.rollback()  # a concurrent PUT won: answer as a repeat of it
            existing = await _find(session, client_id, user_ref)
            if existing is None:  # pragma: no cover - the winner rolled back
                raise Problem(
                    409, "registration-in-progress", "Registration in progress", "Retry."
                ) from None
        else:
            sent = await _send_verification(session, runtime, phone, number, service)
            log.info("number %s registered (method %s)", mask(number.e164), phone.method)
            return await view(session, phone, created=True, sent=sent)

    _check_same(existing, number, method)
    if tag is not None:
        existing.language = tag
    sent = False
    if existing.status == "pending" and existing.verification_message_id is None:
        sent = await _send_verification(session, runtime, existing, number, service)
    await session.flush()
    return await view(session, existing, created=False, sent=sent)


def _check_registrable(runtime: Runtime, number: PhoneNumber, method: Method | None) -> None:
    """Refuse (422) a number that cannot get the verification SMS or its reply."""
    if number.is_mobile is False:
        raise Problem(
            422,
            "not-mobile",
            "Not a mobile number",
            "This number is not a mobile number, so it cannot receive SMS.",
            errors=[{"field": "body.phone", "message": "not a mobile number"}],
        )
    if method == "reply" and not replies_possible(runtime, number.country):
        raise Problem(
            422,
            "reply-not-possible",
            "Replies cannot reach us from this number",
            "OVHcloud carries replies only from French mobile numbers to a short-number"
            " sender. Use method 'code'.",
            errors=[{"field": "body.method", "message": "reply not possible"}],
        )


def _check_same(existing: UserPhone, number: PhoneNumber, method: Method | None) -> None:
    """Refuse (409) a registration that differs from the stored one: delete first."""
    if existing.number != number.e164:
        raise Problem(
            409,
            "phone-already-registered",
            "Another number is registered",
            "This user already has another number. DELETE it first, then register the new one.",
        )
    if method is not None and method != existing.method:
        raise Problem(
            409,
            "verification-method-differs",
            "Registered with another method",
            f"This number is being verified by {existing.method!r}."
            " DELETE it first to verify it another way.",
        )


async def unregister(session: AsyncSession, client_id: str, user_ref: str) -> None:
    """Forget the user's number; a verification SMS not yet sent is cancelled and refunded."""
    phone = await find_registration(session, client_id, user_ref)
    if phone.verification_message_id is not None:
        await settle_queued(
            session,
            Message.id == phone.verification_message_id,
            status=Status.CANCELLED,
            reason="cancelled",
            refund_reason="phone number deleted",
        )
    await session.execute(delete(UserPhone).where(UserPhone.id == phone.id))


async def registrations_for(session: AsyncSession, number: str) -> list[UserPhone]:
    """Every registration of ``number`` (E.164), for any client, oldest first."""
    rows = await session.scalars(
        select(UserPhone).where(UserPhone.number == number).order_by(UserPhone.id)
    )
    return list(rows.all())


# -- sending ----------------------------------------------------------------------


async def _send_verification(
    session: AsyncSession, runtime: Runtime, phone: UserPhone, number: PhoneNumber, service: str
) -> bool:
    """Queue the one verification SMS and reserve its credits; False if the number takes none.

    The SMS goes although the number is not verified yet (that is its point),
    but never to a number opted out or suspended.
    """
    state = await session.get(NumberState, number.e164)
    if effective_status(phone, state) in ("opted_out", "suspended"):
        return False
    settings = runtime.settings
    await check_verification_limits(session, settings.verification, phone.client_id, number.e164)
    code = None
    if phone.method == "code":
        code = new_code()
        phone.code_hash = hash_code(code)
        phone.code_attempts = 0
    text, language = verification_text(
        "code" if code else "reply",
        phone.language,
        settings.locale.default_language,
        service=service,
        code=code,
        ttl_seconds=settings.verification.code_ttl_seconds,
    )
    message = build_message(
        runtime,
        client_id=phone.client_id,
        recipient=Recipient(number.e164, number.country, phone.language, None),
        text=text,
        no_stop_clause=True,
        event_type=VERIFICATION_EVENT,
        user_ref=phone.user_ref,
        language=language,
    )
    session.add(message)
    phone.verification_message_id = message.id
    phone.verification_sent_at = message.created_at
    if code is not None:
        phone.code_expires_at = message.created_at + timedelta(
            seconds=settings.verification.code_ttl_seconds
        )
    await reserve(session, phone.client_id, [message])
    await announce_queued(session, runtime)
    await session.flush()
    return True


_REFUSED_TITLES = {
    "premium_rate": "Premium-rate number",
    "not_mobile": "Not a mobile number",
    "country_not_allowed": "Country not allowed for this client",
}


def _parse(raw: str, settings: Settings, countries: frozenset[str]) -> PhoneNumber:
    locale = settings.locale
    try:
        return sendable(raw, locale.default_region, locale.allowed_types, countries)
    except InvalidNumber as exc:
        if exc.reason in _REFUSED_TITLES:
            slug = exc.reason.replace("_", "-")
            raise Problem(
                422,
                slug,
                _REFUSED_TITLES[exc.reason],
                f"{exc}: no verification SMS goes to it.",
                errors=[{"field": "body.phone", "message": str(exc)}],
            ) from None
        raise Problem(
            422,
            "invalid-phone",
            "Invalid phone number",
            f"{exc} (write it in international form, e.g. +33601020304).",
            errors=[{"field": "body.phone", "message": str(exc)}],
        ) from None


async def _find(session: AsyncSession, client_id: str, user_ref: str) -> UserPhone | None:
    return await session.scalar(
        select(UserPhone).where(UserPhone.client_id == client_id, UserPhone.user_ref == user_ref)
    )


async def view(
    session: AsyncSession, phone: UserPhone, *, created: bool, sent: bool
) -> Registration:
    """The registration as the API shows it, with the number's current state."""
    state = await session.get(NumberState, phone.number, populate_existing=True)
    status = effective_status(phone, state)
    return Registration(phone, status, country_of(phone.number), created, sent)
