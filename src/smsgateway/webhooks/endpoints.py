from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict

from smsgateway.deps import ClientDep, SessionDep
from smsgateway.webhooks.service import list_deliveries

router = APIRouter(prefix="/v1/webhook-deliveries", tags=["webhooks"])


class WebhookDeliveryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    event_type: str
    status: str
    url: str
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    payload: dict[str, Any]


class WebhookDeliveryList(BaseModel):
    items: list[WebhookDeliveryOut]


@router.get("", response_model=WebhookDeliveryList, summary="Webhook events and their delivery")
async def get_deliveries(
    client: ClientDep,
    session: SessionDep,
    status: Annotated[Literal["pending", "sending", "delivered", "failed"] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> WebhookDeliveryList:
    """The calling client's webhook events, newest first: pending, delivered or failed."""
    rows = await list_deliveries(session, client.id, status=status, limit=limit)
    return WebhookDeliveryList(items=[WebhookDeliveryOut.model_validate(r) for r in rows])
