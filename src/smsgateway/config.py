"""Settings, read once from the environment (``SMSGW_*``)."""

from __future__ import annotations

from functools import lru_cache
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
    smart_encoding: bool = Field(
        default=True,
        description="Replace typographic look-alikes (curly quotes, dashes) by GSM characters",
    )

    # Dispatcher
    worker_batch_size: int = Field(default=50, ge=1, le=1000)
    worker_concurrency: int = Field(default=8, ge=1, le=256)
    worker_poll_seconds: float = Field(default=1.0, gt=0)
    lease_seconds: float = Field(default=60.0, gt=0)
    retry_base_seconds: float = Field(default=2.0, gt=0)
    retry_max_seconds: float = Field(default=600.0, gt=0)
    max_attempts: int = Field(default=10, ge=1)

    # Pricing: built-in default is one credit per part at 0.07 EUR a credit.
    credits_per_part: float = Field(default=1.0, ge=0)
    credit_price: float = Field(default=0.07, ge=0)
    currency: str = "EUR"

    log_level: str = "INFO"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
