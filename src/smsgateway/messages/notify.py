"""``message.status`` webhooks: the marketplace hears of every step a message takes."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from smsgateway.db import utcnow
from smsgateway.models.clients import ApiClient
from smsgateway.models.messages import Message
from smsgateway.webhooks.service import enqueue


async def status_changed(session: AsyncSession, message_id: str) -> None:
    """Write a ``message.status`` event for the message's current status (same transaction)."""
    message = await session.get(Message, message_id, populate_existing=True)
    if message is None:
        return
    client = await session.get(ApiClient, message.client_id)
    if client is None or not client.webhook_url:
        return
    enqueue(
        session,
        client,
        "message.status",
        {
            "message_id": message.id,
            "status": message.status,
            "reason": message.reason,
            "to": message.to,
            "booking_id": message.booking_id,
            "event_type": message.event_type,
            "role": message.role,
            "tag": message.tag,
            "provider_id": message.provider_id,
            "at": utcnow().isoformat(),
        },
    )
