"""``POST /v1/estimates``: what a text would cost, per recipient, before sending it.

The text (given, or a template rendered with values) is counted once by
``encoding.analyse`` exactly as a message would be (smart encoding, STOP mention),
then priced per destination country with the runtime's pricing table. Nothing is
sent and nothing is stored; opt-outs and verification are not consulted, so the
estimate is what the numbers would cost if every one of them were texted.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field, model_validator

from smsgateway.booking import EventType, Role
from smsgateway.deps import RuntimeDep, SessionDep, current_client
from smsgateway.encoding import analyse
from smsgateway.errors import PROBLEM_JSON
from smsgateway.messages.schemas import Credits
from smsgateway.numbers import InvalidNumber, sendable
from smsgateway.templates.languages import canonical_language
from smsgateway.templates.preview import render_template
from smsgateway.templates.schemas import (
    MAX_PLACEHOLDER_VALUES,
    PLACEHOLDER_VALUES_DESCRIPTION,
    PlaceholderValue,
)

router = APIRouter(tags=["messages"])

_PROBLEM: dict[str, Any] = {"content": {PROBLEM_JSON: {}}}

MAX_RECIPIENTS = 1000


class TemplateRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: EventType
    role: Role
    language: str | None = Field(
        default=None,
        max_length=35,
        description="BCP 47 tag; falls back like a booking SMS (pt-BR, pt, default language)",
    )
    values: dict[str, PlaceholderValue] | None = Field(
        default=None,
        max_length=MAX_PLACEHOLDER_VALUES,
        description=PLACEHOLDER_VALUES_DESCRIPTION,
    )


class EstimateIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"to": ["+33601020304", "+48512345678"], "text": "Your kayak is ready."},
                {
                    "to": ["+33601020304"],
                    "template": {"type": "booking.accepted", "role": "asker", "language": "fr"},
                },
            ]
        },
    )

    to: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        min_length=1,
        max_length=MAX_RECIPIENTS,
        description="Numbers, E.164 (or national with SMSGW_DEFAULT_REGION); each is"
        " estimated as listed, duplicates included",
    )
    text: str | None = Field(default=None, min_length=1, max_length=1600)
    template: TemplateRef | None = None
    no_stop_clause: bool = Field(
        default=True,
        description="false counts the STOP mention OVHcloud appends (11 characters)",
    )

    @model_validator(mode="after")
    def _one_source(self) -> EstimateIn:
        if (self.text is None) == (self.template is None):
            raise ValueError("give exactly one of text or template")
        return self


class RecipientEstimate(BaseModel):
    to: str = Field(description="E.164")
    country: str | None = Field(description="ISO 3166-1 alpha-2 country the price is for")
    encoding: str
    segments: int
    credits: Credits
    cost: Credits


class InvalidRecipient(BaseModel):
    to: str = Field(description="As given")
    reason: str = Field(description="Stable code, e.g. invalid_phone")
    detail: str


class EstimateTotals(BaseModel):
    recipients: int = Field(description="Valid recipients estimated")
    invalid: int
    segments: int
    credits: Credits
    cost: Credits
    currency: str


class EstimateOut(BaseModel):
    text: str = Field(description="The text counted, as it would be sent")
    language: str | None = Field(description="Template language used (null for a text)")
    recipients: list[RecipientEstimate]
    invalid: list[InvalidRecipient]
    totals: EstimateTotals


@router.post(
    "/v1/estimates",
    response_model=EstimateOut,
    dependencies=[Depends(current_client)],
    responses={
        401: {"description": "Missing or invalid API key", **_PROBLEM},
        422: {"description": "Invalid request, template or language tag", **_PROBLEM},
    },
    summary="Estimate parts, credits and cost, sending nothing",
)
async def estimate(body: EstimateIn, session: SessionDep, runtime: RuntimeDep) -> EstimateOut:
    """Encoding, SMS parts, credits and cost for each number, with the totals.

    Invalid numbers are listed apart with the reason and cost nothing. Credits per part
    depend on the destination country (the pricing table); nothing is sent or stored.
    """
    settings = runtime.settings
    language: str | None = None
    if body.template is not None:
        ref = body.template
        tag = (
            canonical_language(ref.language, field_name="template.language")
            if ref.language
            else None
        )
        template, text = await render_template(
            session, settings, ref.type, ref.role, tag, ref.values
        )
        language = template.language
    else:
        assert body.text is not None  # guaranteed by EstimateIn._one_source
        text = body.text
    parts = analyse(
        text, stop_clause=not body.no_stop_clause, smart=settings.templates.smart_encoding
    )

    pricing = runtime.pricing
    recipients: list[RecipientEstimate] = []
    invalid: list[InvalidRecipient] = []
    for raw in body.to:
        try:
            number = sendable(raw, settings.locale.default_region, settings.locale.allowed_types)
        except InvalidNumber as exc:
            invalid.append(InvalidRecipient(to=raw, reason=exc.reason, detail=str(exc)))
            continue
        price = pricing.price(number.country, parts.segments)
        recipients.append(
            RecipientEstimate(
                to=number.e164,
                country=number.country,
                encoding=parts.encoding.value,
                segments=parts.segments,
                credits=price.credits,
                cost=price.cost,
            )
        )
    return EstimateOut(
        text=parts.text,
        language=language,
        recipients=recipients,
        invalid=invalid,
        totals=EstimateTotals(
            recipients=len(recipients),
            invalid=len(invalid),
            segments=sum(r.segments for r in recipients),
            credits=sum((r.credits for r in recipients), Decimal(0)),
            cost=sum((r.cost for r in recipients), Decimal(0)),
            currency=pricing.currency,
        ),
    )
