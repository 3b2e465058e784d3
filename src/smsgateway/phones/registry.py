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
  ``verification_max_attempts`` times.

Services only flush; the caller commits. The subscriber list and suspension
are in ``phones.subscribers``.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from smsgateway.clients.credits import reserve
from smsgateway.db import utcnow
from smsgateway.errors import Problem
from smsgateway.messages.service import announce_queued, build_message, settle_queued
from smsgateway.models.clients import ApiClient
from smsgateway.models.messages import Message
from smsgateway.models.phones import NumberState, UserPhone
from smsgateway.models.status import Status
from smsgateway.numbers import InvalidNumber, PhoneNumber, country_of, mask, normalise
from smsgateway.phones.service import Recipient
from smsgateway.phones.texts import Method, verification_text
from smsgateway.runtime import Runtime
from smsgateway.templates.languages import canonical_language
from smsgateway.webhooks.service import enqueue

log = logging.getLogger(__name__)

# OVHcloud keeps a reply window of 48 hours after the SMS it answers.
REPLY_WINDOW = timedelta(hours=48)
# Replies reach OVHcloud's short numbers from French mobiles only.
REPLY_COUNTRIES = frozenset({"FR"})
CODE_DIGITS = 6
VERIFICATION_EVENT = "phone.verification"

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
    return country in REPLY_COUNTRIES and not runtime.settings.ovh_sender


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
    return await _view(session, phone, created=False, sent=False)


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
    number = _parse(raw_phone, settings.default_region)
    if number.is_mobile is False:
        raise Problem(
            422,
            "not-mobile",
            "Not a mobile number",
            "This number is not a mobile number, so it cannot receive SMS.",
            errors=[{"field": "body.phone", "message": "not a mobile number"}],
        )
    tag = canonical_language(language, field_name="body.language") if language else None
    if method == "reply" and not replies_possible(runtime, number.country):
        raise Problem(
            422,
            "reply-not-possible",
            "Replies cannot reach us from this number",
            "OVHcloud carries replies only from French mobile numbers to a short-number"
            " sender. Use method 'code'.",
            errors=[{"field": "body.method", "message": "reply not possible"}],
        )
    client_id, service = client.id, settings.verification_service_name or client.name

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
            return await _view(session, phone, created=True, sent=sent)

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
    if tag is not None:
        existing.language = tag
    sent = False
    if existing.status == "pending" and existing.verification_message_id is None:
        sent = await _send_verification(session, runtime, existing, number, service)
    await session.flush()
    return await _view(session, existing, created=False, sent=sent)


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


# -- verification ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CodeCheck:
    """The outcome of one code: ``attempts_left`` matters when it was wrong."""

    registration: Registration
    outcome: Literal["verified", "already_verified", "wrong"]
    attempts_left: int


async def check_code(
    session: AsyncSession, runtime: Runtime, client_id: str, user_ref: str, code: str
) -> CodeCheck:
    """Check a one-time code. A wrong one spends an attempt: commit before answering.

    Refusals that spend nothing are raised: 409 (no code to check), 429 (no
    attempts left, even for the right code: that is what stops guessing), 410
    (expired). Attempts are taken with a conditional update, so parallel
    guesses cannot go past the limit.
    """
    phone = await find_registration(session, client_id, user_ref)
    if phone.status == "verified":
        view = await _view(session, phone, created=False, sent=False)
        return CodeCheck(view, "already_verified", 0)
    if phone.method != "code" or phone.code_hash is None or phone.code_expires_at is None:
        raise Problem(
            409,
            "no-code-sent",
            "No code to check",
            "No verification code was sent to this number"
            + (" (it is verified by reply)." if phone.method != "code" else "."),
        )
    limit = runtime.settings.verification_max_attempts
    if phone.code_attempts >= limit:
        raise _too_many_attempts()
    if phone.code_expires_at <= utcnow():
        raise Problem(
            410,
            "code-expired",
            "Verification code expired",
            "This code has expired. DELETE the number and register it again for a new code.",
        )
    spent = await session.scalar(
        update(UserPhone)
        .where(UserPhone.id == phone.id, UserPhone.code_attempts < limit)
        .values(code_attempts=UserPhone.code_attempts + 1)
        .returning(UserPhone.code_attempts)
        .execution_options(synchronize_session=False)
    )
    if spent is None:
        raise _too_many_attempts()
    set_committed_value(phone, "code_attempts", spent)
    if not _code_matches(code, phone.code_hash):
        view = await _view(session, phone, created=False, sent=False)
        return CodeCheck(view, "wrong", max(0, limit - spent))
    await _mark_verified(session, phone)
    await _forget_code(session, phone, code)
    view = await _view(session, phone, created=False, sent=False)
    return CodeCheck(view, "verified", max(0, limit - spent))


async def verify_by_reply(session: AsyncSession, number: str) -> list[UserPhone]:
    """Verify every registration a YES from ``number`` (E.164) answers.

    That is each ``pending`` registration by ``reply`` of this number, for any
    client, whose verification SMS was queued less than ``REPLY_WINDOW`` ago
    (OVHcloud drops later replies). Each gets ``verified_at`` and a
    ``phone.verified`` webhook to its client. Returns them; empty: nothing to
    verify. Only flushes.
    """
    since = utcnow() - REPLY_WINDOW
    candidates = (
        await session.scalars(
            select(UserPhone)
            .where(
                UserPhone.number == number,
                UserPhone.status == "pending",
                UserPhone.method == "reply",
                UserPhone.verification_sent_at > since,
            )
            .order_by(UserPhone.id)
        )
    ).all()
    verified = [phone for phone in candidates if await _mark_verified(session, phone)]
    await session.flush()
    return verified


async def registrations_for(session: AsyncSession, number: str) -> list[UserPhone]:
    """Every registration of ``number`` (E.164), for any client, oldest first."""
    rows = await session.scalars(
        select(UserPhone).where(UserPhone.number == number).order_by(UserPhone.id)
    )
    return list(rows.all())


async def _mark_verified(session: AsyncSession, phone: UserPhone) -> bool:
    """``pending`` -> ``verified`` once, with its webhook; False if another request won."""
    now = utcnow()
    flipped = await session.execute(
        update(UserPhone)
        .where(UserPhone.id == phone.id, UserPhone.status == "pending")
        .values(status="verified", verified_at=now)
        .execution_options(synchronize_session=False)
    )
    if not flipped.rowcount:  # type: ignore[attr-defined]
        await session.refresh(phone)
        return False
    set_committed_value(phone, "status", "verified")
    set_committed_value(phone, "verified_at", now)
    client = await session.get(ApiClient, phone.client_id)
    if client is not None:
        data = {"user_ref": phone.user_ref, "phone": phone.number, "method": phone.method}
        enqueue(session, client, "phone.verified", data, now=now)
    log.info("number %s verified by %s", mask(phone.number), phone.method)
    return True


async def _forget_code(session: AsyncSession, phone: UserPhone, code: str) -> None:
    """Drop the used code's hash, and blank the code in the stored SMS text."""
    phone.code_hash = None
    if phone.verification_message_id is None:
        return
    message = await session.get(Message, phone.verification_message_id)
    if message is not None and message.status not in (Status.QUEUED, Status.SENDING):
        message.text = message.text.replace(code, "*" * len(code))


def _too_many_attempts() -> Problem:
    return Problem(
        429,
        "too-many-attempts",
        "Too many wrong codes",
        "This code is locked. DELETE the number and register it again for a new code.",
    )


def _hash_code(code: str, salt: bytes | None = None) -> str:
    salt = salt if salt is not None else secrets.token_bytes(16)
    return salt.hex() + "$" + hashlib.sha256(salt + code.encode()).hexdigest()


def _code_matches(code: str, stored: str) -> bool:
    salt_hex, _, _digest = stored.partition("$")
    try:
        salt = bytes.fromhex(salt_hex)
    except ValueError:
        return False
    return hmac.compare_digest(_hash_code(code, salt).encode(), stored.encode())


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
    code = None
    if phone.method == "code":
        code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
        phone.code_hash = _hash_code(code)
        phone.code_attempts = 0
    text, language = verification_text(
        "code" if code else "reply",
        phone.language,
        settings.default_language,
        service=service,
        code=code,
        ttl_seconds=settings.verification_code_ttl_seconds,
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
            seconds=settings.verification_code_ttl_seconds
        )
    await reserve(session, phone.client_id, [message])
    await announce_queued(session, runtime)
    await session.flush()
    return True


def _parse(raw: str, default_region: str | None) -> PhoneNumber:
    try:
        return normalise(raw, default_region)
    except InvalidNumber as exc:
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


async def _view(
    session: AsyncSession, phone: UserPhone, *, created: bool, sent: bool
) -> Registration:
    state = await session.get(NumberState, phone.number, populate_existing=True)
    status = effective_status(phone, state)
    return Registration(phone, status, country_of(phone.number), created, sent)
