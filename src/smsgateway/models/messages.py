from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import Boolean, ForeignKey, Index, Integer, Numeric, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from smsgateway.db import Base, UTCDateTime, utcnow


def new_message_id() -> str:
    return str(uuid.uuid4())


def provider_tag_for(message_id: str) -> str:
    """The tag sent with the SMS (OVHcloud allows 20 characters) to find it again."""
    return "sgw" + message_id.replace("-", "")[:17]


class Message(Base):
    """One SMS to one recipient. See ``models.status`` for the lifecycle.

    ``due_at`` is when the dispatcher may next take it (the requested
    ``send_at``, or the time of the next retry); ``lease_until`` bounds how
    long a worker may hold it in ``sending`` before another takes it up.
    """

    __tablename__ = "messages"
    __table_args__ = (
        Index("ix_messages_status_due_at", "status", "due_at"),
        Index("ix_messages_client_created", "client_id", "created_at"),
        Index("uq_messages_client_reminder", "client_id", "reminder_key", unique=True),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_message_id)
    client_id: Mapped[str] = mapped_column(ForeignKey("api_clients.id"))
    event_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    event_type: Mapped[str | None] = mapped_column(String(40), nullable=True)
    booking_id: Mapped[str | None] = mapped_column(String(128), nullable=True, index=True)
    role: Mapped[str | None] = mapped_column(String(16), nullable=True)
    user_ref: Mapped[str | None] = mapped_column(String(128), nullable=True)
    to: Mapped[str] = mapped_column("to_number", String(64))
    country: Mapped[str | None] = mapped_column(String(2), nullable=True)
    language: Mapped[str | None] = mapped_column(String(35), nullable=True)
    text: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(255), nullable=True)
    encoding: Mapped[str] = mapped_column(String(8))
    segments: Mapped[int] = mapped_column(Integer)
    credits: Mapped[Decimal] = mapped_column(Numeric(14, 4))
    cost: Mapped[Decimal] = mapped_column(Numeric(14, 4))
    tag: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    no_stop_clause: Mapped[bool] = mapped_column(Boolean, default=True)
    send_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # How many statuses the marketplace has been told of: each message.status
    # webhook carries it as ``sequence`` (see messages.lifecycle).
    status_sequence: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # A cancel or block that came while the provider may have the SMS (being
    # sent, or uncertain): applied once the provider is known not to have it.
    settle_to: Mapped[str | None] = mapped_column(String(16), nullable=True)
    settle_reason: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lease_owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    uncertain: Mapped[bool] = mapped_column(Boolean, default=False)
    # When the provider may first have got it without our knowing; see dispatcher.
    uncertain_since: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(255), nullable=True)
    provider: Mapped[str | None] = mapped_column(String(16), nullable=True)
    provider_tag: Mapped[str] = mapped_column(String(20), unique=True)
    # The tag the SMS actually went with: its own, or its batch's when it
    # shared one provider job with other messages of the same text.
    job_tag: Mapped[str | None] = mapped_column(String(20), nullable=True, index=True)
    provider_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    # Past this moment the SMS is no longer worth sending (it ends ``expired``).
    valid_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Last time a submitted message without a final report was looked up at the provider.
    checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # The id of the HTTP request that created it, for logs across processes.
    request_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # transactional (booking events, direct sends, the gateway's own texts),
    # reminder (scheduled by the gateway from a booking event) or campaign.
    kind: Mapped[str] = mapped_column(String(16), default="transactional")
    # Whether the due time was held out of the recipient's quiet hours.
    quiet_hours: Mapped[bool] = mapped_column(Boolean, default=False)
    campaign_id: Mapped[str | None] = mapped_column(
        ForeignKey("campaigns.id"), nullable=True, index=True
    )
    # A reminder's identity (type, role, booking, time): unique per client, so the
    # same reminder is never scheduled twice; cleared when the gateway cancels it.
    reminder_key: Mapped[str | None] = mapped_column(String(255), nullable=True)
    dlr_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    ptt_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    final_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class SendAttempt(Base):
    """One row per call to the provider for a message: the audit trail of retries."""

    __tablename__ = "send_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    message_id: Mapped[str] = mapped_column(ForeignKey("messages.id"), index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    worker: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime] = mapped_column(UTCDateTime)
    outcome: Mapped[str] = mapped_column(String(16))
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(String(255), nullable=True)
    provider_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
