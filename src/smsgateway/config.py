"""Settings, read once from the environment (``SMSGW_*``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
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

    # Replies: polling OVHcloud's incoming SMS and its STOP list (0 turns one off)
    incoming_poll_seconds: float = Field(default=30.0, ge=0)
    blacklist_sync_seconds: float = Field(default=3600.0, ge=0)

    # Webhooks to the marketplace
    webhook_timeout_seconds: float = Field(default=10.0, gt=0)
    webhook_retry_base_seconds: float = Field(default=5.0, gt=0)
    webhook_retry_max_seconds: float = Field(default=3600.0, gt=0)
    webhook_max_attempts: int = Field(default=30, ge=1)

    # Clients
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="Addresses or CIDR ranges whose X-Forwarded-For is believed",
    )
    default_rate_limit_per_second: float | None = Field(default=None, gt=0)

    # Pricing: built-in default is one credit per part at 0.07 EUR a credit.
    credits_per_part: float = Field(default=1.0, ge=0)
    credit_price: float = Field(default=0.07, ge=0)
    currency: str = "EUR"
    pricing_file: Path | None = Field(
        default=None,
        description="JSON pricing table (credits per part by country); replaces the three above",
    )

    log_level: str = "INFO"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
