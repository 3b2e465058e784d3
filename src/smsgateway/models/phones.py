"""Phone numbers: the registry of users' numbers, their verification, opt-out."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from smsgateway.db import Base, UTCDateTime, utcnow


class UserPhone(Base):
    """The number a client's user registered, and where its verification stands.

    ``status`` is the registration's own state (``pending`` or ``verified``);
    what the API shows also depends on the number's ``NumberState`` (see
    ``phones.registry.effective_status``). One verification SMS is sent per
    row: trying again means deleting the row and registering again.

    For the ``code`` method only a salted SHA-256 of the code is kept
    (``code_hash`` is ``"<salt hex>$<digest hex>"``), with its expiry and the
    attempts spent; a code is checked at most ``SMSGW_VERIFICATION_MAX_ATTEMPTS``
    times, counted with a conditional update so parallel guesses cannot go over.
    """

    __tablename__ = "user_phones"
    __table_args__ = (UniqueConstraint("client_id", "user_ref"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("api_clients.id"))
    user_ref: Mapped[str] = mapped_column(String(128))
    number: Mapped[str] = mapped_column(String(20), index=True)
    language: Mapped[str | None] = mapped_column(String(35), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    method: Mapped[str] = mapped_column(String(8), default="reply")
    code_hash: Mapped[str | None] = mapped_column(String(100), nullable=True)
    code_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    code_attempts: Mapped[int] = mapped_column(Integer, default=0)
    verification_message_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    verification_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class NumberState(Base):
    """Per-number flags that hold for every client: opted out (STOP), suspended."""

    __tablename__ = "number_states"

    number: Mapped[str] = mapped_column(String(20), primary_key=True)
    opted_out_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Set by START: the provider's own blacklist may still list the number,
    # and must be cleared rather than believed (see replies.poller).
    opted_in_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    suspended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class VerificationSend(Base):
    """One verification SMS sent, counted by ``phones.pumping``: a key of its number
    (``numbers.receiver_key``), not the number, so erasing the number keeps the count."""

    __tablename__ = "verification_sends"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    number_key: Mapped[str] = mapped_column(String(32), index=True)
    client_id: Mapped[str] = mapped_column(String(36), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class ErasedNumber(Base):
    """A number a client erased (``privacy.erasure``), by key: a campaign whose file
    still holds it skips it instead of texting it again."""

    __tablename__ = "erased_numbers"

    client_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    number_key: Mapped[str] = mapped_column(String(32), primary_key=True)
    erased_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
