from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Numeric, String
from sqlalchemy.orm import Mapped, mapped_column

from smsgateway.db import Base, UTCDateTime, utcnow
from smsgateway.types import JsonType


class ApiClient(Base):
    """A marketplace backend. Only a hash of its API key is stored."""

    __tablename__ = "api_clients"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=lambda: str(uuid.uuid4()))
    name: Mapped[str] = mapped_column(String(100), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    key_prefix: Mapped[str] = mapped_column(String(16))
    quota: Mapped[Decimal | None] = mapped_column(Numeric(14, 4), nullable=True)
    alert_threshold: Mapped[Decimal | None] = mapped_column(Numeric(14, 4), nullable=True)
    allowed_ips: Mapped[list[Any]] = mapped_column(JsonType, default=list)
    webhook_url: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
