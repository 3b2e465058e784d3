from __future__ import annotations

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from smsgateway.booking import RECIPIENTS, EventType, Role
from smsgateway.dates import Moment
from smsgateway.messages.schemas import Credits

LANGUAGE_PATTERN = r"^[A-Za-z]{2,8}([-_][A-Za-z0-9]{1,8})*$"


class Booking(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=128)
    title: str = Field(min_length=1, max_length=200)
    starts_at: Moment | None = None
    expires_at: Moment | None = None


class Party(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_ref: str = Field(min_length=1, max_length=128)
    name: str = Field(default="", max_length=100)
    phone: str | None = Field(
        default=None,
        max_length=32,
        description="E.164 number; may be omitted when the user_ref has a registered number",
    )
    language: str | None = Field(default=None, max_length=35, pattern=LANGUAGE_PATTERN)


class BookingEventIn(BaseModel):
    """A booking event; ``event_id`` is the idempotency key."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "event_id": "evt-981",
                    "type": "booking.requested",
                    "booking": {
                        "id": "b-42",
                        "title": "Kayak for two",
                        "starts_at": "2026-12-01T09:00:00+01:00",
                        "expires_at": "2026-11-22T09:00:00+01:00",
                    },
                    "asker": {
                        "user_ref": "u-1",
                        "name": "Anna",
                        "phone": "+33601020304",
                        "language": "fr",
                    },
                    "offeror": {
                        "user_ref": "u-2",
                        "name": "Marc",
                        "phone": "+33611223344",
                        "language": "en",
                    },
                }
            ]
        },
    )

    event_id: str = Field(min_length=1, max_length=128)
    type: EventType
    booking: Booking
    asker: Party | None = None
    offeror: Party | None = None
    send_at: Moment | None = Field(default=None, description="Hold the messages until this time")

    @model_validator(mode="after")
    def _parties_and_times(self) -> BookingEventIn:
        for role in RECIPIENTS[self.type]:
            if getattr(self, role) is None:
                raise ValueError(f"'{role}' is required for {self.type}")
        if self.booking.starts_at is None:
            # Every text names when the booking starts.
            raise ValueError(f"booking.starts_at is required for {self.type}")
        if self.type == "booking.expiring_soon" and self.booking.expires_at is None:
            raise ValueError("booking.expires_at is required for booking.expiring_soon")
        return self


class EventMessage(BaseModel):
    id: str
    role: Role
    to: str
    status: str
    reason: str | None
    encoding: str
    segments: int
    credits: Credits


class EventReminder(BaseModel):
    """A reminder the gateway keeps for the booking (see the README's reminders)."""

    id: str
    type: EventType
    role: Role
    to: str
    status: str
    send_at: Moment | None = Field(description="The reminder's own time (lead before)")
    due_at: AwareDatetime | None = Field(description="When it goes, out of quiet hours")
    segments: int
    credits: Credits
    created: bool = Field(
        description="true: scheduled by this event; false: scheduled or sent earlier, and"
        " the reason this event sent nothing to that role"
    )


class BookingEventAccepted(BaseModel):
    event_id: str
    messages: list[EventMessage]
    reminders: list[EventReminder] = Field(
        default_factory=list,
        description="Reminders scheduled by this event (booking.accepted, booking.requested),"
        " or the earlier ones that stand in for this booking.*_soon event",
    )
