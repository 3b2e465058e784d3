from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from smsgateway.booking import EventType, Role
from smsgateway.encoding import SmsParts
from smsgateway.models.templates import TemplateChange
from smsgateway.templates.preview import Preview
from smsgateway.templates.service import Template

TEMPLATE_MAX_LENGTH = 1000

# Caller-supplied placeholder values (preview, estimates). A value longer than a whole
# template cannot belong in an SMS, and a bound keeps rendering and counting cheap.
MAX_PLACEHOLDER_VALUES = 20
PLACEHOLDER_VALUE_MAX_LENGTH = 1000
PlaceholderValue = Annotated[str, Field(max_length=PLACEHOLDER_VALUE_MAX_LENGTH)]
PLACEHOLDER_VALUES_DESCRIPTION = (
    f"Placeholder values by name (at most {MAX_PLACEHOLDER_VALUES}, each at most"
    f" {PLACEHOLDER_VALUE_MAX_LENGTH:,} characters); missing ones take sample values"
)


class TemplateOut(BaseModel):
    type: str = Field(description="Booking event type")
    role: str = Field(description="Who receives the text: asker or offeror")
    language: str = Field(description="BCP 47 tag, canonical spelling (pt-BR)")
    text: str
    is_default: bool = Field(description="True for the shipped text, false for a stored one")
    has_default: bool = Field(
        description="Whether a shipped text exists for this language (DELETE returns to it)"
    )
    placeholders: dict[str, int] = Field(
        description="Placeholders this (type, role) offers, with their maximum length"
    )
    updated_at: datetime | None = Field(description="Last change of a stored text")
    updated_by: str | None = Field(description="X-Actor of the last change of a stored text")

    @classmethod
    def of(cls, template: Template) -> TemplateOut:
        return cls(
            type=template.event_type,
            role=template.role,
            language=template.language,
            text=template.text,
            is_default=template.is_default,
            has_default=template.has_default,
            placeholders=template.placeholders,
            updated_at=template.updated_at,
            updated_by=template.updated_by,
        )


class TemplateList(BaseModel):
    items: list[TemplateOut]


class TemplateIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "text": "Good news: {other_name} accepted your request for"
                    " {booking_title} on {starts_at}."
                }
            ]
        },
    )

    text: str = Field(
        min_length=1,
        max_length=TEMPLATE_MAX_LENGTH,
        description="Placeholders are bare names in braces ({booking_title}); write a"
        " literal brace as {{ or }}",
    )


class TemplateChangeOut(BaseModel):
    id: int
    type: str
    role: str
    language: str
    action: str = Field(description="put or delete")
    old_text: str | None = Field(description="Stored text before; null if none was stored")
    new_text: str | None = Field(description="Stored text after; null after a delete")
    changed_by: str
    changed_at: datetime

    @classmethod
    def of(cls, change: TemplateChange) -> TemplateChangeOut:
        return cls(
            id=change.id,
            type=change.event_type,
            role=change.role,
            language=change.language,
            action=change.action,
            old_text=change.old_text,
            new_text=change.new_text,
            changed_by=change.changed_by,
            changed_at=change.changed_at,
        )


class TemplateChangeList(BaseModel):
    items: list[TemplateChangeOut]
    next_before: int | None = Field(
        description="Pass as `before` to get older changes; null on the last page"
    )


class PreviewIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "type": "booking.accepted",
                    "role": "asker",
                    "language": "fr",
                    "values": {"other_name": "Marc"},
                }
            ]
        },
    )

    type: EventType
    role: Role
    language: str | None = Field(
        default=None,
        max_length=35,
        description="BCP 47 tag; default SMSGW_DEFAULT_LANGUAGE. Without `text`, the"
        " template a reader of this language gets (with fallback)",
    )
    text: str | None = Field(
        default=None,
        min_length=1,
        max_length=TEMPLATE_MAX_LENGTH,
        description="An unsaved text to try; default: the template in effect",
    )
    values: dict[str, PlaceholderValue] | None = Field(
        default=None,
        max_length=MAX_PLACEHOLDER_VALUES,
        description=PLACEHOLDER_VALUES_DESCRIPTION,
    )


class SmsSize(BaseModel):
    encoding: str = Field(description="gsm7 or ucs2")
    characters: int
    segments: int = Field(description="SMS parts billed")

    @classmethod
    def of(cls, parts: SmsParts) -> SmsSize:
        return cls(
            encoding=parts.encoding.value, characters=parts.characters, segments=parts.segments
        )


class PreviewOut(BaseModel):
    text: str = Field(description="The rendered text as it would be sent (smart encoding applied)")
    language: str
    encoding: str = Field(description="gsm7 or ucs2")
    characters: int
    segments: int = Field(description="SMS parts billed")
    worst_case: SmsSize = Field(
        description="Every placeholder filled to its maximum length with GSM-7 letters;"
        " the budget (SMSGW_TEMPLATE_MAX_PARTS) is checked on this"
    )
    worst_case_ucs2: SmsSize = Field(
        description="The same with values that are not all GSM-7 (a name such as Łukasz"
        " makes the whole message UCS-2)"
    )
    max_segments: int = Field(description="SMSGW_TEMPLATE_MAX_PARTS")
    within_budget: bool

    @classmethod
    def of(cls, preview: Preview) -> PreviewOut:
        rendered = preview.rendered
        return cls(
            text=rendered.text,
            language=preview.language,
            encoding=rendered.encoding.value,
            characters=rendered.characters,
            segments=rendered.segments,
            worst_case=SmsSize.of(preview.worst_case),
            worst_case_ucs2=SmsSize.of(preview.worst_case_ucs2),
            max_segments=preview.max_segments,
            within_budget=preview.worst_case.segments <= preview.max_segments,
        )
