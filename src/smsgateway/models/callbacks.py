from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from smsgateway.db import Base, UTCDateTime, utcnow
from smsgateway.types import JsonType


class DeliveryReport(Base):
    """Every delivery report received, stored once.

    ``dedup_key`` (provider, SMS id, dlr, ptt, date) makes a replayed report
    harmless. A report that arrives before the send's answer was stored has no
    ``message_id`` yet and ``applied`` false; the dispatcher applies it as soon
    as it records the provider's SMS id.
    """

    __tablename__ = "delivery_reports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dedup_key: Mapped[str] = mapped_column(String(64), unique=True)
    provider: Mapped[str] = mapped_column(String(16))
    provider_id: Mapped[str] = mapped_column(String(64), index=True)
    message_id: Mapped[str | None] = mapped_column(
        ForeignKey("messages.id"), nullable=True, index=True
    )
    dlr: Mapped[int] = mapped_column(Integer)
    ptt: Mapped[int | None] = mapped_column(Integer, nullable=True)
    reported_at: Mapped[str | None] = mapped_column(String(64), nullable=True)
    description: Mapped[str | None] = mapped_column(String(255), nullable=True)
    params: Mapped[dict[str, Any]] = mapped_column(JsonType)
    # The job's tag and ``numbers.receiver_key`` of the receiver, as the report gave them.
    tag: Mapped[str | None] = mapped_column(String(20), nullable=True, index=True)
    receiver_key: Mapped[str | None] = mapped_column(String(32), nullable=True)
    applied: Mapped[bool] = mapped_column(Boolean, default=False)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class IncomingMessage(Base):
    """An SMS a user sent us, stored once per provider id, with what it was taken to mean.

    Push and polling can both bring the same SMS: the unique (provider,
    provider_id) makes the second one a no-op. ``outcome`` records what the
    gateway did (verified, opted_out, accepted, ambiguous, ignored, ...).
    """

    __tablename__ = "incoming_messages"
    __table_args__ = (UniqueConstraint("provider", "provider_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    provider: Mapped[str] = mapped_column(String(16))
    provider_id: Mapped[str] = mapped_column(String(80))
    sender: Mapped[str] = mapped_column(String(32), index=True)
    text: Mapped[str] = mapped_column(String(1600))
    received_at: Mapped[str | None] = mapped_column(String(64), nullable=True)
    keyword: Mapped[str | None] = mapped_column(String(16), nullable=True)
    outcome: Mapped[str | None] = mapped_column(String(32), nullable=True)
    booking_request_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
