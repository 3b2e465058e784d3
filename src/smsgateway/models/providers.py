from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from smsgateway.db import Base, UTCDateTime, utcnow


class ProviderState(Base):
    """The provider's health as the workers see it, shared with every process.

    Written by a worker's circuit breaker when it opens or closes, read by
    ``/readyz`` and ``/metrics`` in any process.
    """

    __tablename__ = "provider_state"

    provider: Mapped[str] = mapped_column(String(16), primary_key=True)
    circuit: Mapped[str] = mapped_column(String(16), default="closed")
    failures: Mapped[int] = mapped_column(Integer, default=0)
    opened_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(255), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ProviderCallWindow(Base):
    """Provider calls made in one minute, counted across every worker (fair use)."""

    __tablename__ = "provider_call_windows"

    provider: Mapped[str] = mapped_column(String(16), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    calls: Mapped[int] = mapped_column(Integer, default=0)
