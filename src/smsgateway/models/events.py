from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from smsgateway.db import Base, UTCDateTime, utcnow
from smsgateway.types import JsonType


class BookingEvent(Base):
    """The idempotency record of one accepted event.

    Written in the same transaction as the messages it created; ``response``
    is the exact answer given the first time, replayed for a repeated event.
    """

    __tablename__ = "booking_events"
    __table_args__ = (UniqueConstraint("client_id", "event_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("api_clients.id"))
    event_id: Mapped[str] = mapped_column(String(128))
    event_type: Mapped[str] = mapped_column(String(40))
    booking_id: Mapped[str] = mapped_column(String(128), index=True)
    body_hash: Mapped[str] = mapped_column(String(64))
    response: Mapped[dict[str, Any]] = mapped_column(JsonType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class BookingRequest(Base):
    """A booking request the offeror may answer by SMS.

    ``code`` tells apart the open requests of one number: the SMS shows it
    when the offeror has several requests open, and a reply must then name it.
    A request is ``open`` until answered by reply (``accepted``/``refused``),
    closed by a later event, or past ``expires_at``.
    """

    __tablename__ = "booking_requests"
    __table_args__ = (
        UniqueConstraint("client_id", "booking_id"),
        Index("ix_booking_requests_number_status", "number", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("api_clients.id"))
    booking_id: Mapped[str] = mapped_column(String(128))
    title: Mapped[str] = mapped_column(String(200))
    user_ref: Mapped[str] = mapped_column(String(128))
    number: Mapped[str] = mapped_column(String(20))
    code: Mapped[str] = mapped_column(String(4))
    status: Mapped[str] = mapped_column(String(16), default="open")
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    message_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
