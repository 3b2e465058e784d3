"""Campaigns: one text with ``#COLUMN#`` placeholders sent to the rows of a CSV."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, LargeBinary, Numeric, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from smsgateway.db import Base, UTCDateTime, utcnow
from smsgateway.types import JsonType


def new_campaign_id() -> str:
    return str(uuid.uuid4())


class Campaign(Base):
    """A campaign and how far its messages have been created.

    ``status`` is ``creating`` while the worker turns CSV rows into messages
    (``next_row`` rows done, ``pace_at`` the due time the next message takes),
    ``created`` once every row has its message, ``cancelled`` once stopped.

    Money: the campaign's credits are taken from the client's balance when it
    is accepted (``credits_held``); as each batch of messages is created, their
    share moves onto the messages (one ``reserve`` ledger row each, so each can
    be refunded on its own), and what is left when the last row is done or the
    campaign is cancelled goes back to the balance.
    """

    __tablename__ = "campaigns"
    __table_args__ = (
        Index("ix_campaigns_client_created", "client_id", "created_at"),
        Index("ix_campaigns_status", "status"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_campaign_id)
    client_id: Mapped[str] = mapped_column(ForeignKey("api_clients.id"))
    name: Mapped[str] = mapped_column(String(100))
    tag: Mapped[str | None] = mapped_column(String(64), nullable=True)
    text: Mapped[str] = mapped_column(Text)
    # How to read the stored CSV again: its delimiter and header.
    delimiter: Mapped[str] = mapped_column(String(1))
    columns: Mapped[list[Any]] = mapped_column(JsonType)
    quiet_hours: Mapped[bool] = mapped_column(Boolean, default=True)
    send_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="creating")
    # The counts of the acceptance pass (the same as a dry run's).
    summary: Mapped[dict[str, Any]] = mapped_column(JsonType)
    credits: Mapped[Decimal] = mapped_column(Numeric(14, 4))
    cost: Mapped[Decimal] = mapped_column(Numeric(14, 4))
    charged: Mapped[bool] = mapped_column(Boolean, default=False)  # False: unlimited client
    credits_held: Mapped[Decimal] = mapped_column(Numeric(14, 4))
    next_row: Mapped[int] = mapped_column(Integer, default=0)
    messages_created: Mapped[int] = mapped_column(Integer, default=0)
    pace_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    lease_owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(255), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class CampaignChunk(Base):
    """The uploaded CSV, stored as it came in slices, until its messages exist.

    Kept in the database (not on a disk) so any worker process can create the
    messages; deleted once the last row has its message or the campaign is
    cancelled.
    """

    __tablename__ = "campaign_chunks"

    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.id"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    data: Mapped[bytes] = mapped_column(LargeBinary)
