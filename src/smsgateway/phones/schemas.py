"""Request and answer bodies of the phone routes."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from smsgateway.messages.schemas import Credits
from smsgateway.models.phones import NumberState
from smsgateway.phones.registry import REPLY_WINDOW, EffectiveStatus, Registration


class PhoneIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    phone: str = Field(
        min_length=1,
        max_length=32,
        description="A mobile number, E.164 (`+33601020304`), or national when the server"
        " has a default region",
        examples=["+33601020304"],
    )
    language: str | None = Field(
        default=None,
        max_length=35,
        description="BCP 47 tag for the verification SMS and later booking SMS",
        examples=["fr"],
    )
    method: Literal["reply", "code"] | None = Field(
        default=None,
        description="`reply`: the SMS asks to reply YES. `code`: the SMS carries a one-time"
        " code to POST to `/phone/verify`. Default: `reply` where a reply can reach"
        " OVHcloud (French numbers, short-number sender), else `code`.",
    )


class VerificationOut(BaseModel):
    message_id: str = Field(description="The verification SMS (see `GET /v1/messages/{id}`)")
    sent_at: datetime = Field(description="When the SMS was queued")
    expires_at: datetime | None = Field(
        description="`code`: when the code stops working. `reply`: when OVHcloud's 48-hour"
        " reply window closes."
    )
    attempts_left: int | None = Field(description="`code` only: codes that may still be tried")


class PhoneOut(BaseModel):
    user_ref: str
    phone: str = Field(description="E.164")
    country: str | None = Field(description="ISO 3166-1 alpha-2")
    language: str | None
    method: Literal["reply", "code"]
    status: EffectiveStatus = Field(
        description="`opted_out` (the user sent STOP) and `suspended` hold for every client"
        " and come first; otherwise `pending` or `verified`"
    )
    created_at: datetime
    verified_at: datetime | None
    verification: VerificationOut | None = Field(
        description="The one verification SMS; null when none could be sent (the number"
        " was opted out or suspended)"
    )

    @classmethod
    def of(cls, reg: Registration, max_attempts: int) -> PhoneOut:
        phone = reg.phone
        verification = None
        if phone.verification_message_id is not None and phone.verification_sent_at:
            if phone.method == "code":
                expires_at = phone.code_expires_at
                left: int | None = max(0, max_attempts - phone.code_attempts)
            else:
                expires_at, left = phone.verification_sent_at + REPLY_WINDOW, None
            verification = VerificationOut(
                message_id=phone.verification_message_id,
                sent_at=phone.verification_sent_at,
                expires_at=expires_at,
                attempts_left=left,
            )
        return cls(
            user_ref=phone.user_ref,
            phone=phone.number,
            country=reg.country,
            language=phone.language,
            method="code" if phone.method == "code" else "reply",
            status=reg.status,
            created_at=phone.created_at,
            verified_at=phone.verified_at,
            verification=verification,
        )


class CodeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(
        min_length=1,
        max_length=16,
        description="The 6 digits of the SMS (spaces are ignored)",
        examples=["482913"],
    )

    @field_validator("code")
    @classmethod
    def _six_digits(cls, value: str) -> str:
        digits = "".join(value.split())
        if len(digits) != 6 or not digits.isascii() or not digits.isdigit():
            raise ValueError("the code is 6 digits")
        return digits


class SubscriberOut(BaseModel):
    phone: str = Field(description="E.164")
    country: str | None = Field(description="ISO 3166-1 alpha-2")
    user_ref: str
    language: str | None
    method: Literal["reply", "code"]
    status: EffectiveStatus
    credits_per_sms: Credits = Field(
        description="Credits one single-part SMS to this number costs (the country's rate)"
    )
    created_at: datetime
    verified_at: datetime | None


class SubscriberList(BaseModel):
    items: list[SubscriberOut]
    next_cursor: str | None = Field(description="Pass as `cursor` to get the next page")


class NumberStatusIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Literal["suspended", "active"] = Field(
        description="`suspended`: the number gets no SMS from any client; `active`: lift it"
    )


class NumberOut(BaseModel):
    phone: str = Field(description="E.164")
    country: str | None
    status: Literal["active", "suspended", "opted_out"] = Field(
        description="`opted_out` (STOP) wins over `suspended`; only the user lifts it (START)"
    )
    suspended_at: datetime | None
    opted_out_at: datetime | None
    credits_per_sms: Credits

    @staticmethod
    def status_of(state: NumberState) -> Literal["active", "suspended", "opted_out"]:
        if state.opted_out_at is not None:
            return "opted_out"
        return "suspended" if state.suspended_at is not None else "active"
