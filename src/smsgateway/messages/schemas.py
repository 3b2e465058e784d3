from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer

from smsgateway.dates import Moment
from smsgateway.models.messages import Message

# Credits and money are exact decimals in the database and plain JSON numbers on the wire.
Credits = Annotated[Decimal, PlainSerializer(float, return_type=float, when_used="json")]


class MessageOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    status: str
    reason: str | None
    to: str
    text: str
    role: str | None
    booking_id: str | None
    event_type: str | None
    tag: str | None
    language: str | None
    country: str | None
    encoding: str
    segments: int
    credits: Credits
    cost: Credits
    send_at: datetime | None
    due_at: datetime | None = Field(
        description="When it may go: send_at, or later when held by quiet hours, marketing"
        " hours or a campaign's pace (then the next retry while it is being sent)"
    )
    kind: str = Field(description="transactional, reminder or campaign")
    settle_to: str | None = Field(
        default=None,
        description="A cancel or block asked for while OVHcloud may have had the SMS (being"
        " sent, or being looked up): it ends so unless OVHcloud had it, then it runs its"
        " course",
    )
    campaign_id: str | None
    provider_id: str | None
    created_at: datetime
    submitted_at: datetime | None
    delivered_at: datetime | None

    @classmethod
    def of(cls, message: Message) -> MessageOut:
        return cls.model_validate(message)


class MessageList(BaseModel):
    items: list[MessageOut]
    next_cursor: str | None = Field(description="Pass as `cursor` to get the next page")


class DirectMessageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: str = Field(min_length=1, max_length=32, description="E.164 number")
    text: str = Field(min_length=1, max_length=1600)
    send_at: Moment | None = None
    tag: str | None = Field(default=None, max_length=64)
    quiet_hours: bool = Field(
        default=False,
        description="true holds the text out of the recipient's quiet hours (22:00-08:00"
        " local by default); direct sends are urgent unless they ask for this",
    )
