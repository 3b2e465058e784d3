"""Verifying a registered number: by its one-time code, or by a YES replied to its SMS.

Both flip ``pending`` to ``verified`` once (a conditional update, so parallel
requests cannot verify twice) and send the client a ``phone.verified`` webhook.
Services only flush; the caller commits.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from smsgateway.db import utcnow
from smsgateway.errors import Problem
from smsgateway.models.clients import ApiClient
from smsgateway.models.messages import Message
from smsgateway.models.phones import UserPhone
from smsgateway.models.status import Status
from smsgateway.numbers import mask
from smsgateway.phones.codes import code_matches
from smsgateway.phones.registry import REPLY_WINDOW, Registration, find_registration, view
from smsgateway.runtime import Runtime
from smsgateway.webhooks.service import enqueue

log = logging.getLogger(__name__)


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
        shown = await view(session, phone, created=False, sent=False)
        return CodeCheck(shown, "already_verified", 0)
    if phone.method != "code" or phone.code_hash is None or phone.code_expires_at is None:
        raise Problem(
            409,
            "no-code-sent",
            "No code to check",
            "No verification code was sent to this number"
            + (" (it is verified by reply)." if phone.method != "code" else "."),
        )
    limit = runtime.settings.verification.max_attempts
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
    if not code_matches(code, phone.code_hash):
        shown = await view(session, phone, created=False, sent=False)
        return CodeCheck(shown, "wrong", max(0, limit - spent))
    await _mark_verified(session, phone)
    await _forget_code(session, phone, code)
    shown = await view(session, phone, created=False, sent=False)
    return CodeCheck(shown, "verified", max(0, limit - spent))


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
