from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Integer, String, UniqueConstraint
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
