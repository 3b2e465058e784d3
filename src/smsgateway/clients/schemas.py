"""Request and answer bodies of the admin clients API and of ``GET /v1/account``.

Credits are exact decimals (4 places, like the database) and plain JSON
numbers on the wire. Validation lives here so the HTTP API and the CLI refuse
the same things with the same words.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    UrlConstraints,
    field_validator,
    model_validator,
)

from smsgateway.clients.network import MAX_ALLOWED_IPS, normalise_entry
from smsgateway.messages.schemas import Credits
from smsgateway.models.clients import ApiClient, CreditEntry
from smsgateway.webhooks.outbound import check_syntax

# Numeric(14, 4): ten digits before the point.
_MAX_CREDITS = Decimal("9999999999")

CreditAmount = Annotated[Decimal, Field(ge=0, le=_MAX_CREDITS, max_digits=14, decimal_places=4)]
ClientName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
AllowedIp = Annotated[
    str,
    StringConstraints(max_length=64),
    AfterValidator(normalise_entry),
]
AllowedIps = Annotated[
    list[AllowedIp],
    Field(
        max_length=MAX_ALLOWED_IPS,
        description=(
            f"At most {MAX_ALLOWED_IPS} IPv4/IPv6 addresses or CIDR ranges the client may "
            "call from; empty means any address. A range with host bits set "
            "(`10.0.0.1/24`) is refused."
        ),
    ),
]


def _no_credentials(url: AnyHttpUrl) -> AnyHttpUrl:
    check_syntax(str(url))
    return url


Countries = Annotated[
    list[Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]],
    Field(
        max_length=250,
        description='ISO 3166-1 alpha-2 countries the client may text (e.g. ["FR", "BE"]);'
        " null: SMSGW_DEFAULT_ALLOWED_COUNTRIES; []: every country",
    ),
]
WebhookUrl = Annotated[AnyHttpUrl, UrlConstraints(max_length=2048), AfterValidator(_no_credentials)]
RatePerSecond = Annotated[
    float,
    Field(
        gt=0,
        le=100_000,
        description="Requests a second this client may make (per API process); "
        "null uses SMSGW_DEFAULT_RATE_LIMIT_PER_SECOND",
    ),
]


def _unique(entries: list[str]) -> list[str]:
    return list(dict.fromkeys(entries))


class ClientCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: ClientName
    quota: CreditAmount | None = Field(
        default=None, description="Credits granted; null (the default) is unlimited"
    )
    alert_threshold: CreditAmount | None = Field(
        default=None, description="`quota.low` is sent when credits left fall below this"
    )
    allowed_ips: AllowedIps = Field(default_factory=list)
    allowed_countries: Countries | None = None
    webhook_url: WebhookUrl | None = None
    rate_limit_per_second: RatePerSecond | None = None

    @field_validator("allowed_ips")
    @classmethod
    def _dedupe(cls, value: list[str]) -> list[str]:
        return _unique(value)


class ClientUpdate(BaseModel):
    """Only the fields present change; ``null`` resets one (``quota: null`` is unlimited)."""

    model_config = ConfigDict(extra="forbid")

    name: ClientName | None = None
    quota: CreditAmount | None = Field(
        default=None,
        description="New quota: the balance moves by the difference (a `409` if that "
        "would take it below zero); null makes the client unlimited",
    )
    alert_threshold: CreditAmount | None = None
    allowed_ips: AllowedIps | None = Field(default=None, description="null or [] lifts it")
    allowed_countries: Countries | None = None
    webhook_url: WebhookUrl | None = None
    rate_limit_per_second: RatePerSecond | None = None

    @field_validator("allowed_ips")
    @classmethod
    def _dedupe(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else _unique(value)

    @model_validator(mode="after")
    def _name_not_null(self) -> ClientUpdate:
        if "name" in self.model_fields_set and self.name is None:
            raise ValueError("name cannot be null")
        return self

    def changes(self) -> dict[str, Any]:
        """The fields given, as values for the row (URLs as text, null lists as empty)."""
        values: dict[str, Any] = {}
        for name in self.model_fields_set:
            value = getattr(self, name)
            if name == "webhook_url" and value is not None:
                value = str(value)
            if name == "allowed_ips" and value is None:
                value = []
            values[name] = value
        return values


class ClientOut(BaseModel):
    id: str
    name: str
    quota: Credits | None = Field(description="Credits granted; null is unlimited")
    credits_left: Credits | None = Field(description="The balance; null is unlimited")
    alert_threshold: Credits | None
    low_credit_alerted: bool = Field(
        description="`quota.low` was sent for the current crossing (re-armed by a top-up)"
    )
    allowed_ips: list[str]
    allowed_countries: list[str] | None = Field(
        description="ISO countries the client may text; null: SMSGW_DEFAULT_ALLOWED_COUNTRIES"
    )
    webhook_url: str | None
    rate_limit_per_second: float | None = Field(
        description="null: the server default (SMSGW_DEFAULT_RATE_LIMIT_PER_SECOND)"
    )
    key_prefix: str = Field(description="First characters of the API key, to recognise it")
    created_at: datetime
    updated_at: datetime | None
    disabled_at: datetime | None

    @classmethod
    def of(cls, client: ApiClient) -> ClientOut:
        return cls(**_client_fields(client))


def _client_fields(client: ApiClient) -> dict[str, Any]:
    return {
        "id": client.id,
        "name": client.name,
        "quota": client.quota,
        "credits_left": client.balance,
        "alert_threshold": client.alert_threshold,
        "low_credit_alerted": client.low_credit_alerted,
        "allowed_ips": list(client.allowed_ips or []),
        "allowed_countries": client.allowed_countries,
        "webhook_url": client.webhook_url,
        "rate_limit_per_second": client.rate_limit_per_second,
        "key_prefix": client.key_prefix,
        "created_at": client.created_at,
        "updated_at": client.updated_at,
        "disabled_at": client.disabled_at,
    }


class ClientCreated(ClientOut):
    api_key: str = Field(description="Shown once: only its SHA-256 is stored")
    webhook_secret: str = Field(
        description="HMAC-SHA256 key of the `Smsgw-Signature` webhook header; shown here "
        "and by rotate-webhook-secret only"
    )

    @classmethod
    def of_new(cls, client: ApiClient, api_key: str) -> ClientCreated:
        return cls(
            **_client_fields(client), api_key=api_key, webhook_secret=client.webhook_secret or ""
        )


class ClientList(BaseModel):
    items: list[ClientOut]


class KeyRotated(BaseModel):
    id: str
    api_key: str = Field(description="Shown once; the previous key stopped working")
    key_prefix: str


class WebhookSecretRotated(BaseModel):
    id: str
    webhook_secret: str = Field(description="Shown once; webhooks are signed with it from now")


class CreditsChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    delta: Annotated[
        Decimal,
        Field(ge=-_MAX_CREDITS, le=_MAX_CREDITS, max_digits=14, decimal_places=4),
    ] = Field(description="Credits to add (positive) or remove (negative); not zero")
    reason: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)
    ] = Field(description="Why: kept in the ledger")

    @field_validator("delta")
    @classmethod
    def _not_zero(cls, value: Decimal) -> Decimal:
        if value == 0:
            raise ValueError("delta cannot be zero")
        return value


class LedgerEntryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: str = Field(description="grant | adjust | reserve | refund")
    delta: Credits
    balance_after: Credits | None
    message_id: str | None
    reason: str | None
    actor: str | None
    created_at: datetime

    @classmethod
    def of(cls, entry: CreditEntry) -> LedgerEntryOut:
        return cls.model_validate(entry)


class LedgerPage(BaseModel):
    items: list[LedgerEntryOut] = Field(description="Newest first")
    next_cursor: str | None = Field(description="Pass as `cursor` to get older entries")


class UsageTotals(BaseModel):
    messages: int
    credits: Credits


class DayUsage(UsageTotals):
    date: date


class TagUsage(UsageTotals):
    tag: str | None


class Usage(BaseModel):
    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True)

    from_: date = Field(alias="from", description="First day (UTC), inclusive")
    to: date = Field(description="Last day (UTC), inclusive")
    totals: UsageTotals
    by_day: list[DayUsage] = Field(description="Days with usage, oldest first")
    by_tag: list[TagUsage] = Field(description="Most credits first; untagged is `tag: null`")


class AccountOut(BaseModel):
    id: str
    name: str
    quota: Credits | None = Field(description="Credits granted; null is unlimited")
    credits_left: Credits | None = Field(description="null is unlimited")
    alert_threshold: Credits | None
    usage: Usage


class Resealed(BaseModel):
    resealed: int = Field(description="Webhook secrets sealed again with the first key")
