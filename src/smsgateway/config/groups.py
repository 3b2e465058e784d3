"""The settings groups, one per concern, each read from its own ``SMSGW_*`` variables."""

from __future__ import annotations

from datetime import time
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode

from smsgateway.config.base import FROM_JSON, Group, Zone, variables
from smsgateway.numbers import NUMBER_TYPES


class DatabaseSettings(Group):
    model_config = variables("SMSGW_DATABASE_")

    url: str = "sqlite+aiosqlite:///./smsgateway.db"
    pool_size: int = Field(default=10, ge=1)


class ProviderSettings(Group):
    """Which provider sends, and how hard it may be called."""

    model_config = variables("SMSGW_PROVIDER_")

    name: Literal["fake", "ovh"] = Field(default="fake", validation_alias="SMSGW_PROVIDER")
    calls_per_minute: int = Field(
        default=60, ge=0, description="Provider calls a minute, all workers together (0: no limit)"
    )
    lookup_share: float = Field(
        default=0.25,
        gt=0,
        le=1,
        description="Share of calls_per_minute that looking up uncertain sends may use",
    )
    listing_lag_seconds: float = Field(
        default=60.0,
        ge=0,
        description="Longest time the provider takes to list an SMS after its job has run;"
        " an SMS listed later than this may be sent twice",
    )
    circuit_failure_threshold: int = Field(
        default=5, ge=1, validation_alias="SMSGW_CIRCUIT_FAILURE_THRESHOLD"
    )
    circuit_cooldown_seconds: float = Field(
        default=30.0, gt=0, validation_alias="SMSGW_CIRCUIT_COOLDOWN_SECONDS"
    )


class OvhSettings(Group):
    model_config = variables("SMSGW_OVH_")

    endpoint: str = "ovh-eu"
    application_key: SecretStr | None = None
    application_secret: SecretStr | None = None
    consumer_key: SecretStr | None = None
    service_name: str | None = None
    sender: str = ""
    timeout_seconds: float = Field(default=10.0, gt=0)


class LocaleSettings(Group):
    model_config = variables("SMSGW_")

    default_language: str = "en"
    default_region: str | None = Field(
        default=None,
        description="ISO country used to read numbers written without +country code",
    )
    allow_number_types: Annotated[list[str], NoDecode, FROM_JSON] = Field(
        default_factory=list,
        description='Number types sent to despite the rule, e.g. ["fixed_line"] (premium_rate,'
        " shared_cost, uan, fixed_line, toll_free, voicemail, pager)",
    )

    @field_validator("allow_number_types")
    @classmethod
    def _known_types(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - NUMBER_TYPES)
        if unknown:
            raise ValueError(f"unknown number types {unknown}; known: {sorted(NUMBER_TYPES)}")
        return value

    @property
    def allowed_types(self) -> frozenset[str]:
        return frozenset(self.allow_number_types)


class VerificationSettings(Group):
    """Phone verification (PUT /v1/users/{user_ref}/phone)."""

    model_config = variables("SMSGW_VERIFICATION_")

    required: bool = Field(
        default=True,
        validation_alias="SMSGW_REQUIRE_VERIFIED_PHONE",
        description="Booking SMS go only to verified numbers",
    )
    code_ttl_seconds: int = Field(
        default=600, ge=60, le=86400, description="How long a one-time code is valid"
    )
    max_attempts: int = Field(
        default=5, ge=1, le=100, description="Wrong codes allowed before the code is locked"
    )
    service_name: str | None = Field(
        default=None,
        max_length=40,
        description="Name the verification SMS starts with; unset: the API client's name",
    )
    per_number_per_hour: int = Field(
        default=3,
        ge=1,
        description="Verification SMS to one number an hour, every user_ref and client together",
    )
    per_client_per_hour: int = Field(
        default=200, ge=1, description="Verification SMS one client may have sent an hour"
    )


class TemplateSettings(Group):
    model_config = variables("SMSGW_TEMPLATE_")

    smart_encoding: bool = Field(
        default=True,
        validation_alias="SMSGW_SMART_ENCODING",
        description="Replace typographic look-alikes (curly quotes, dashes) by GSM characters",
    )
    max_parts: int = Field(
        default=2,
        ge=1,
        le=10,
        description="Most SMS parts a template may take with every placeholder at its maximum",
    )
    cache_seconds: float = Field(
        default=2.0,
        ge=0,
        description="How long an API process keeps the stored templates after reading "
        "them (0: read them on every message); edits made elsewhere take this long to apply",
    )


class WorkerSettings(Group):
    """How every background loop claims work (messages, webhooks, campaigns)."""

    model_config = variables("SMSGW_WORKER_")

    poll_seconds: float = Field(default=1.0, gt=0)
    lease_seconds: float = Field(default=60.0, gt=0, validation_alias="SMSGW_LEASE_SECONDS")
    batch_size: int = Field(default=50, ge=1, le=1000)
    concurrency: int = Field(default=8, ge=1, le=256)
    stall_seconds: float = Field(
        default=120.0,
        gt=0,
        validation_alias="SMSGW_LOOP_STALL_SECONDS",
        description="A background loop with no completed pass for this long past its due"
        " time (stuck, or failing) makes /readyz answer 503; `worker` then exits non-zero",
    )


class DispatchSettings(Group):
    """How the dispatcher sends a message: retries, validity, batching."""

    model_config = variables("SMSGW_")

    retry_base_seconds: float = Field(default=2.0, gt=0)
    retry_max_seconds: float = Field(default=600.0, gt=0)
    max_attempts: int = Field(default=10, ge=1)
    uncertain_settle_seconds: float = Field(
        default=120.0,
        ge=0,
        description="How long an SMS the provider may have accepted is looked up before resending",
    )
    max_schedule_days: float = Field(
        default=366.0,
        gt=0,
        validation_alias="SMSGW_MAX_SCHEDULE_DAYS",
        description="Furthest send_at accepted, in days from now",
    )
    message_validity_hours: float = Field(
        default=24.0, gt=0, description="After this long unsent, a message ends expired"
    )
    batch_max_receivers: int = Field(
        default=500, ge=1, le=1000, description="Receivers of one provider job (same text)"
    )


class DeliveryReportSettings(Group):
    model_config = variables("SMSGW_DLR_")

    check_after_seconds: float = Field(
        default=3600.0, gt=0, description="Look up a submitted message with no report after this"
    )
    check_interval_seconds: float = Field(default=300.0, ge=0)
    give_up_hours: float = Field(default=72.0, gt=0)


class ReplySettings(Group):
    """Polling OVHcloud's incoming SMS and its STOP list (0 turns one off)."""

    model_config = variables("SMSGW_")

    incoming_poll_seconds: float = Field(default=30.0, ge=0)
    blacklist_sync_seconds: float = Field(default=3600.0, ge=0)


class ReminderSettings(Group):
    """README "Scheduling, reminders and campaigns"."""

    model_config = variables("SMSGW_REMINDER_")

    enabled: bool = Field(
        default=True,
        validation_alias="SMSGW_REMINDERS_ENABLED",
        description="Schedule booking reminders automatically (off: the marketplace posts"
        " booking.starting_soon / booking.expiring_soon itself)",
    )
    lead_hours: float = Field(
        default=24.0, ge=0, description="booking.starting_soon reminders go this long before"
    )
    expiry_lead_hours: float = Field(
        default=2.0,
        ge=0,
        validation_alias="SMSGW_EXPIRY_REMINDER_LEAD_HOURS",
        description="booking.expiring_soon reminders go this long before",
    )


class QuietHoursSettings(Group):
    """Non-urgent texts wait out this window of the recipient's local time."""

    model_config = variables("SMSGW_QUIET_HOURS_")

    enabled: bool = True
    start: time = time(22, 0)
    end: time = time(8, 0)
    fallback_zone: Zone = Field(
        default="Europe/Paris", description="Zone of numbers whose own zone cannot be told"
    )

    @model_validator(mode="after")
    def _window(self) -> QuietHoursSettings:
        if self.start == self.end:
            raise ValueError("SMSGW_QUIET_HOURS_START and SMSGW_QUIET_HOURS_END must differ")
        return self


class MarketingHoursSettings(Group):
    """Campaign texts go only in this window of ``zone``'s local time."""

    model_config = variables("SMSGW_MARKETING_")

    hours_enabled: bool = True
    hours_start: time = time(8, 0)
    hours_end: time = time(20, 0)
    days: Annotated[list[int], NoDecode, FROM_JSON] = Field(
        default_factory=lambda: [1, 2, 3, 4, 5, 6],
        description="ISO weekdays campaigns may send on (1 Monday ... 7 Sunday)",
    )
    zone: Zone = "Europe/Paris"

    @field_validator("days")
    @classmethod
    def _iso_weekdays(cls, days: list[int]) -> list[int]:
        if not days or any(day not in range(1, 8) for day in days):
            raise ValueError("give at least one ISO weekday, 1 (Monday) to 7 (Sunday)")
        return sorted(set(days))

    @model_validator(mode="after")
    def _window(self) -> MarketingHoursSettings:
        if self.hours_start >= self.hours_end:
            raise ValueError("SMSGW_MARKETING_HOURS_START must be before SMSGW_MARKETING_HOURS_END")
        return self


class CampaignSettings(Group):
    model_config = variables("SMSGW_CAMPAIGN_")

    rate_per_second: float = Field(
        default=10.0, gt=0, le=1000, description="Campaign SMS a second (due times are spread)"
    )
    max_rows: int = Field(default=100_000, ge=1, le=1_000_000)
    batch_size: int = Field(
        default=1000, ge=1, le=10_000, description="Campaign rows made messages a transaction"
    )


class PricingSettings(Group):
    """Built-in default: one credit per part at 0.07 EUR a credit."""

    model_config = variables("SMSGW_")

    credits_per_part: float = Field(default=1.0, ge=0)
    credit_price: float = Field(default=0.07, ge=0)
    currency: str = "EUR"
    file: Path | None = Field(
        default=None,
        validation_alias="SMSGW_PRICING_FILE",
        description="JSON pricing table (credits per part by country); replaces the three above",
    )


class LogSettings(Group):
    """README "Observability and runbook"."""

    model_config = variables("SMSGW_LOG_")

    level: str = "INFO"
    format: Literal["text", "json"] = Field(
        default="text", description="json: one JSON object per line, for log collectors"
    )
    access_log: bool = Field(
        default=True, validation_alias="SMSGW_ACCESS_LOG", description="One log line per request"
    )


class MetricsSettings(Group):
    model_config = variables("SMSGW_METRICS_")

    cache_seconds: float = Field(
        default=5.0, ge=0, description="How long /metrics reuses its database gauges"
    )
    messages_window_seconds: float = Field(
        default=86400.0, gt=0, description="smsgw_messages counts messages created this recently"
    )
    worker_port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        validation_alias="SMSGW_WORKER_METRICS_PORT",
        description="Where `smsgateway worker` serves /metrics",
    )
    worker_host: str = Field(default="127.0.0.1", validation_alias="SMSGW_WORKER_METRICS_HOST")
