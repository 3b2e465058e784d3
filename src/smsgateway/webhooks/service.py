"""Writing webhook events to the outbox, and listing deliveries."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from smsgateway.db import utcnow
from smsgateway.models.clients import ApiClient
from smsgateway.models.webhooks import WebhookDelivery

EVENT_TYPES = (
    "message.status",
    "phone.verified",
    "phone.opted_out",
    "phone.opted_in",
    "booking.reply",
    "quota.low",
)


def enqueue(
    session: AsyncSession,
    client: ApiClient,
    event_type: str,
    data: dict[str, Any],
    *,
    now: datetime | None = None,
) -> WebhookDelivery | None:
    """Add an event to the outbox in the caller's transaction.

    Nothing is written for a client without a ``webhook_url``.
    """
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown webhook event type {event_type!r}")
    if not client.webhook_url:
        return None
    now = now or utcnow()
    delivery_id = str(uuid.uuid4())
    delivery = WebhookDelivery(
        id=delivery_id,
        client_id=client.id,
        event_type=event_type,
        url=client.webhook_url,
        payload={
            "id": delivery_id,
            "type": event_type,
            "created_at": now.isoformat(),
            "data": data,
        },
        status="pending",
        attempts=0,
        next_attempt_at=now,
        created_at=now,
    )
    session.add(delivery)
    return delivery


async def list_deliveries(
    session: AsyncSession, client_id: str, *, status: str | None, limit: int
) -> list[WebhookDelivery]:
    query = select(WebhookDelivery).where(WebhookDelivery.client_id == client_id)
    if status:
        query = query.where(WebhookDelivery.status == status)
    query = query.order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id).limit(limit)
    return list((await session.scalars(query)).all())
