"""Settings, read once from the environment (``SMSGW_*``)."""

from __future__ import annotations

from datetime import time
from functools import lru_cache
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob of the service. Secrets are ``SecretStr`` so they never print."""

    model_config = SettingsConfigDict(env_prefix="SMSGW_", env_file=None, extra="ignore")

    database_url: str = "sqlite+aiosqlite:///./smsgateway.db"
    database_pool_size: int = Field(default=10, ge=1)

    provider: Literal["fake", "ovh"] = "fake"
    ovh_endpoint: str = "ovh-eu"
    ovh_application_key: SecretStr | None = None
    ovh_application_secret: SecretStr | None = None
    ovh_consumer_key: SecretStr | None = None
    ovh_service_name: str | None = None
    ovh_sender: str = ""
    ovh_timeout_seconds: float = Field(default=10.0, gt=0)

    admin_token: SecretStr | None = None
    callback_token: SecretStr | None = None

    default_language: str = "en"
    default_region: str | None = Field(
        default=None,
        description="ISO country used to read numbers written without +country code",
    )
    require_verified_phone: bool = True

    # Phone verification (PUT /v1/users/{user_ref}/phone)
    verification_code_ttl_seconds: int = Field(
        default=600, ge=60, le=86400, description="How long a one-time code is valid"
    )
    verification_max_attempts: int = Field(
        default=5, ge=1, le=100, description="Wrong codes allowed before the code is locked"
    )
    verification_service_name: str | None = Field(
        default=None,
        max_length=40,
        description="Name the verification SMS starts with; unset: the API client's name",
    )

    smart_encoding: bool = Field(
        default=True,
        description="Replace typographic look-alikes (curly quotes, dashes) by GSM characters",
    )
    template_max_parts: int = Field(
        default=2,
        ge=1,
        le=10,
        description="Most SMS parts a template may take with every placeholder at its maximum",
    )

    # Dispatcher
    worker_batch_size: int = Field(default=50, ge=1, le=1000)
    worker_concurrency: int = Field(default=8, ge=1, le=256)
    worker_poll_seconds: float = Field(default=1.0, gt=0)
    lease_seconds: float = Field(default=60.0, gt=0)
    retry_base_seconds: float = Field(default=2.0, gt=0)
    retry_max_seconds: float = Field(default=600.0, gt=0)
    max_attempts: int = Field(default=10, ge=1)
    uncertain_settle_seconds: float = Field(
        default=120.0,
        ge=0,
        description="How long an SMS the provider may have accepted is looked up before resending",
    )
    message_validity_hours: float = Field(
        default=24.0, gt=0, description="After this long unsent, a message ends expired"
    )
    batch_max_receivers: int = Field(
        default=500, ge=1, le=1000, description="Receivers of one provider job (same text)"
    )
    provider_calls_per_minute: int = Field(
        default=60, ge=0, description="Provider calls a minute, all workers together (0: no limit)"
    )
    circuit_failure_threshold: int = Field(default=5, ge=1)
    circuit_cooldown_seconds: float = Field(default=30.0, gt=0)
    dlr_check_after_seconds: float = Field(
        default=3600.0, gt=0, description="Look up a submitted message with no report after this"
    )
    dlr_check_interval_seconds: float = Field(default=300.0, ge=0)
    dlr_give_up_hours: float = Field(default=72.0, gt=0)

    # Replies: polling OVHcloud's incoming SMS and its STOP list (0 turns one off)
    incoming_poll_seconds: float = Field(default=30.0, ge=0)
    blacklist_sync_seconds: float = Field(default=3600.0, ge=0)

    # Webhooks to the marketplace
    webhook_timeout_seconds: float = Field(default=10.0, gt=0)
    webhook_retry_base_seconds: float = Field(default=5.0, gt=0)
    webhook_retry_max_seconds: float = Field(default=3600.0, gt=0)
    webhook_max_attempts: int = Field(default=30, ge=1)

    # Scheduling: reminders, quiet hours, campaigns (README "Scheduling, reminders and
    # campaigns"). Times of day are local: quiet hours in the recipient's zone,
    # marketing hours in ``marketing_zone``.
    reminders_enabled: bool = Field(
        default=True,
        description="Schedule booking reminders automatically (off: the marketplace posts"
        " booking.starting_soon / booking.expiring_soon itself)",
    )
    reminder_lead_hours: float = Field(
        default=24.0, ge=0, description="booking.starting_soon reminders go this long before"
    )
    expiry_reminder_lead_hours: float = Field(
        default=2.0, ge=0, description="booking.expiring_soon reminders go this long before"
    )
    quiet_hours_enabled: bool = True
    quiet_hours_start: time = time(22, 0)
    quiet_hours_end: time = time(8, 0)
    quiet_hours_fallback_zone: str = Field(
        default="Europe/Paris", description="Zone of numbers whose own zone cannot be told"
    )
    marketing_hours_enabled: bool = True
    marketing_hours_start: time = time(8, 0)
    marketing_hours_end: time = time(20, 0)
    marketing_days: list[int] = Field(
        default_factory=lambda: [1, 2, 3, 4, 5, 6],
        description="ISO weekdays campaigns may send on (1 Monday ... 7 Sunday)",
    )
    marketing_zone: str = "Europe/Paris"
    campaign_rate_per_second: float = Field(
        default=10.0, gt=0, le=1000, description="Campaign SMS a second (due times are spread)"
    )
    campaign_max_rows: int = Field(default=100_000, ge=1, le=1_000_000)
    campaign_batch_size: int = Field(
        default=1000, ge=1, le=10_000, description="Campaign rows made messages a transaction"
    )

    @field_validator("quiet_hours_fallback_zone", "marketing_zone")
    @classmethod
    def _known_zone(cls, zone: str) -> str:
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{zone!r} is not an IANA time zone") from None
        return zone

    @field_validator("marketing_days")
    @classmethod
    def _iso_weekdays(cls, days: list[int]) -> list[int]:
        if not days or any(day not in range(1, 8) for day in days):
            raise ValueError("give at least one ISO weekday, 1 (Monday) to 7 (Sunday)")
        return sorted(set(days))

    @model_validator(mode="after")
    def _windows(self) -> Settings:
        if self.quiet_hours_start == self.quiet_hours_end:
            raise ValueError("quiet_hours_start and quiet_hours_end must differ")
        if self.marketing_hours_start >= self.marketing_hours_end:
            raise ValueError("marketing_hours_start must be before marketing_hours_end")
        return self

    # Clients
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="Addresses or CIDR ranges whose X-Forwarded-For is believed",
    )
    default_rate_limit_per_second: float | None = Field(default=None, gt=0)
    client_cache_seconds: float = Field(
        default=2.0,
        ge=0,
        description="How long an API process keeps a client's row after reading it "
        "(0: read it on every request); changes made elsewhere take this long to apply",
    )
    template_cache_seconds: float = Field(
        default=2.0,
        ge=0,
        description="How long an API process keeps the stored templates after reading "
        "them (0: read them on every message); edits made elsewhere take this long to apply",
    )

    # Request bodies (413 over the limit); per path prefix, the longest prefix wins.
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    max_body_bytes_by_path: dict[str, int] = Field(
        default_factory=lambda: {"/v1/campaigns": 20 * 1024 * 1024},
        description="Limits for path prefixes, e.g. campaign uploads",
    )

    # Pricing: built-in default is one credit per part at 0.07 EUR a credit.
    credits_per_part: float = Field(default=1.0, ge=0)
    credit_price: float = Field(default=0.07, ge=0)
    currency: str = "EUR"
    pricing_file: Path | None = Field(
        default=None,
        description="JSON pricing table (credits per part by country); replaces the three above",
    )

    log_level: str = "INFO"

    # Observability (see the README's "Observability and runbook")
    log_format: Literal["text", "json"] = Field(
        default="text", description="json: one JSON object per line, for log collectors"
    )
    access_log: bool = Field(default=True, description="One log line per HTTP request")
    metrics_cache_seconds: float = Field(
        default=5.0, ge=0, description="How long /metrics reuses its database gauges"
    )
    metrics_messages_window_seconds: float = Field(
        default=86400.0, gt=0, description="smsgw_messages counts messages created this recently"
    )
    worker_metrics_port: int | None = Field(
        default=None, ge=0, le=65535, description="Where `smsgateway worker` serves /metrics"
    )
    worker_metrics_host: str = "127.0.0.1"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
