"""``POST /v1/erasures``: erase a person's number from what the calling client holds."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from smsgateway.deps import ClientDep, RuntimeDep, SessionDep
from smsgateway.errors import Problem
from smsgateway.numbers import InvalidNumber, mask, normalise
from smsgateway.privacy.erasure import erase_number

router = APIRouter(prefix="/v1", tags=["privacy"])


class ErasureIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    phone: str = Field(min_length=1, max_length=32, description="The number to erase (E.164)")


class ErasureOut(BaseModel):
    phone: str = Field(description="The number, masked")
    registrations_deleted: int
    messages_cancelled: int = Field(description="Queued messages to it, cancelled and refunded")
    messages_redacted: int
    webhooks_redacted: int
    events_redacted: int
    replies_redacted: int


@router.post(
    "/erasures",
    response_model=ErasureOut,
    summary="Erase a number from everything this client holds (GDPR erasure)",
)
async def post_erasure(
    body: ErasureIn, client: ClientDep, session: SessionDep, runtime: RuntimeDep
) -> ErasureOut:
    """Delete the client's registrations of the number, cancel its queued messages to it,
    and redact the number and texts from its messages, webhook payloads, event answers
    and the replies to its requests. The number's STOP, if any, is kept."""
    try:
        number = normalise(body.phone, runtime.settings.locale.default_region)
    except InvalidNumber as exc:
        raise Problem(
            422,
            "invalid-phone",
            "Invalid phone number",
            str(exc),
            errors=[{"field": "body.phone", "message": str(exc)}],
        ) from None
    erased = await erase_number(session, client.id, number.e164)
    await session.commit()
    return ErasureOut(
        phone=mask(number.e164),
        registrations_deleted=erased.registrations,
        messages_cancelled=erased.cancelled,
        messages_redacted=erased.messages,
        webhooks_redacted=erased.webhooks,
        events_redacted=erased.events,
        replies_redacted=erased.replies,
    )
