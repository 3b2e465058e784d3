from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, Numeric, String
from sqlalchemy.orm import Mapped, mapped_column

from smsgateway.db import Base, UTCDateTime, utcnow
from smsgateway.sealing import Sealed
from smsgateway.types import JsonType


class ApiClient(Base):
    """A marketplace backend. Only a hash of its API key is stored.

    ``quota`` is the credits granted so far (None: unlimited) and ``balance``
    what is left of them; ``balance`` always equals the sum of the client's
    ``credit_ledger`` rows and is only changed together with one of them.
    """

    __tablename__ = "api_clients"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=lambda: str(uuid.uuid4()))
    name: Mapped[str] = mapped_column(String(100), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    key_prefix: Mapped[str] = mapped_column(String(16))
    quota: Mapped[Decimal | None] = mapped_column(Numeric(14, 4), nullable=True)
    balance: Mapped[Decimal | None] = mapped_column(Numeric(14, 4), nullable=True)
    alert_threshold: Mapped[Decimal | None] = mapped_column(Numeric(14, 4), nullable=True)
    low_credit_alerted: Mapped[bool] = mapped_column(Boolean, default=False)
    allowed_ips: Mapped[list[Any]] = mapped_column(JsonType, default=list)
    # ISO countries the client may text; null: SMSGW_DEFAULT_ALLOWED_COUNTRIES.
    allowed_countries: Mapped[list[Any] | None] = mapped_column(JsonType, nullable=True)
    rate_limit_per_second: Mapped[float | None] = mapped_column(Float, nullable=True)
    webhook_url: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    # Sealed with SMSGW_SECRET_KEY when it is set (see smsgateway.sealing).
    webhook_secret: Mapped[str | None] = mapped_column(Sealed(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    def countries(self, default: list[str]) -> frozenset[str]:
        """Countries this client may text; empty: every country."""
        chosen = self.allowed_countries if self.allowed_countries is not None else default
        return frozenset(chosen)


class CreditEntry(Base):
    """One change of a client's credits: a grant, an adjustment, a reservation, a refund.

    The unique index on (message_id, kind) is what makes a message reserve
    once and be refunded at most once, however often a refund is attempted.
    """

    __tablename__ = "credit_ledger"
    __table_args__ = (Index("uq_credit_ledger_message_kind", "message_id", "kind", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("api_clients.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # grant | adjust | reserve | refund
    delta: Mapped[Decimal] = mapped_column(Numeric(14, 4))
    balance_after: Mapped[Decimal | None] = mapped_column(Numeric(14, 4), nullable=True)
    message_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    reason: Mapped[str | None] = mapped_column(String(255), nullable=True)
    actor: Mapped[str | None] = mapped_column(String(100), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
