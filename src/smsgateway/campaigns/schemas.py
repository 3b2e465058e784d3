"""What ``/v1/campaigns`` takes and answers."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from smsgateway.dates import Moment
from smsgateway.messages.schemas import Credits

INLINE_CSV_MAX = 1024 * 1024  # characters; larger lists go as a multipart upload
LISTED_ROWS = 100  # invalid and skipped rows listed in a summary (all are counted)
SAMPLE_ROWS = 10  # filled-in texts shown in a summary


class CampaignIn(BaseModel):
    """A campaign. ``csv`` inline (JSON) or as the ``file`` part of a multipart upload."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "Spring sale",
                    "text": "Hello #FIRSTNAME#, -20% on kayaks until Sunday in #CITY#!",
                    "csv": "number;firstname;city\n+33601020304;Anna;Lyon\n",
                    "tag": "spring-sale",
                    "dry_run": True,
                }
            ]
        },
    )

    name: str = Field(min_length=1, max_length=100)
    text: str = Field(
        min_length=1, max_length=1600, description="#COLUMN# placeholders are the row's values"
    )
    csv: str | None = Field(
        default=None,
        max_length=INLINE_CSV_MAX,
        description="The recipients, inline: a header with a `number` column, `;` or `,`"
        " separated. Upload larger files as multipart/form-data (`file`).",
    )
    tag: str | None = Field(
        default=None, max_length=64, description="Set on every message (GET /v1/messages?tag=)"
    )
    send_at: Moment | None = Field(default=None, description="Not before this time")
    dry_run: bool = Field(default=False, description="Count and price only; store nothing")
    quiet_hours: bool = Field(
        default=True, description="Keep out of each recipient's quiet hours (local time)"
    )

    @field_validator("name", "text", "csv", "tag")
    @classmethod
    def _no_nul(cls, value: str | None) -> str | None:
        # PostgreSQL text cannot hold NUL; a CSV with one is refused by the reader too.
        if value is not None and "\x00" in value:
            raise ValueError("must not contain the NUL character")
        return value


class InvalidRow(BaseModel):
    row: int = Field(description="Row in the file; the header is row 1")
    to: str | None = Field(description="The number as written")
    reason: str = Field(
        description="invalid_phone, no_phone, duplicate, wrong_field_count, empty_text,"
        " text_too_long"
    )
    detail: str


class SkippedRow(BaseModel):
    row: int
    to: str
    reason: Literal["opted_out", "suspended", "country_not_allowed"]


class SampleMessage(BaseModel):
    row: int
    to: str
    country: str | None
    text: str = Field(description="The filled-in text (OVHcloud appends its STOP mention)")
    encoding: str
    segments: int = Field(description="SMS parts, the STOP mention counted")
    credits: Credits
    cost: Credits


class SkippedCounts(BaseModel):
    opted_out: int
    suspended: int
    country_not_allowed: int = Field(
        default=0, description="Numbers of countries the client may not text"
    )


class CampaignSummary(BaseModel):
    """What the campaign would send: the same for a dry run and for the real one."""

    rows: int = Field(description="Data rows read (blank lines not counted)")
    recipients: int = Field(description="Messages to send")
    invalid: int
    skipped: SkippedCounts
    segments: int = Field(description="SMS parts in all, the STOP mention counted")
    parts: dict[str, int] = Field(description="Recipients by number of parts, e.g. {'1': 950}")
    credits: Credits
    cost: Credits
    currency: str
    columns: list[str]
    placeholders: list[str]
    delimiter: str
    invalid_rows: list[InvalidRow] = Field(description=f"The first {LISTED_ROWS}")
    skipped_rows: list[SkippedRow] = Field(description=f"The first {LISTED_ROWS}")
    sample: list[SampleMessage] = Field(description=f"The first {SAMPLE_ROWS} messages")


class CampaignDryRun(BaseModel):
    dry_run: Literal[True] = True
    name: str
    text: str
    summary: CampaignSummary


class CampaignProgress(BaseModel):
    rows_done: int = Field(description="Rows turned into messages so far")
    messages: int = Field(description="Messages created so far")
    by_status: dict[str, int] = Field(description="Messages by status, e.g. {'queued': 10}")


class CampaignOut(BaseModel):
    id: str
    name: str
    text: str
    tag: str | None
    status: Literal["creating", "sending", "completed", "cancelled"] = Field(
        description="creating: messages are being created; sending: some are still queued"
        " or being sent; completed: every message is final; cancelled"
    )
    send_at: datetime | None
    quiet_hours: bool
    created_at: datetime
    finished_at: datetime | None = Field(description="When the last message was created")
    summary: CampaignSummary
    progress: CampaignProgress


class CampaignList(BaseModel):
    items: list[CampaignOut]
