"""Settings of what faces the outside: the HTTP API and its tokens, webhooks, and how
long personal data is kept."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode

from smsgateway.config.base import FROM_JSON, Group, variables
from smsgateway.sealing import parse_keys

MIN_TOKEN_LENGTH = 32


class ApiSettings(Group):
    """The HTTP API: tokens, proxies, client defaults and request bodies."""

    model_config = variables("SMSGW_")

    admin_token: SecretStr | None = None
    callback_token: SecretStr | None = None
    metrics_token: SecretStr | None = Field(
        default=None, description="Bearer token for /metrics on the API port (or the admin token)"
    )
    secret_key: SecretStr | None = Field(
        default=None,
        validation_alias="SMSGW_SECRET_KEY",
        description="Fernet keys, comma-separated, that seal webhook secrets at rest (the"
        " first seals, all open)",
    )
    auth_failures_per_minute: int = Field(
        default=10,
        ge=0,
        validation_alias="SMSGW_AUTH_FAILURES_PER_MINUTE",
        description="Wrong admin or callback tokens one address may send a minute before a"
        " 429 (0: no limit)",
    )
    trusted_proxies: Annotated[list[str], NoDecode, FROM_JSON] = Field(
        default_factory=list,
        description="Addresses or CIDR ranges whose X-Forwarded-For is believed",
    )
    default_rate_limit_per_second: float | None = Field(default=None, gt=0)
    default_allowed_countries: Annotated[list[str], NoDecode, FROM_JSON] = Field(
        default_factory=list,
        description="ISO countries a client with no allowed_countries of its own may text"
        " (empty: every country)",
    )
    client_cache_seconds: float = Field(
        default=2.0,
        ge=0,
        description="How long an API process keeps a client's row after reading it "
        "(0: read it on every request); changes made elsewhere take this long to apply",
    )
    body_read_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        description="Longest wait for the next part of a request body: a 408 past it",
    )
    # 413 over the limit; per path prefix, the longest prefix wins.
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    max_body_bytes_by_path: Annotated[dict[str, int], NoDecode, FROM_JSON] = Field(
        default_factory=lambda: {"/v1/campaigns": 20 * 1024 * 1024},
        description="Limits for path prefixes, e.g. campaign uploads",
    )

    @field_validator("secret_key")
    @classmethod
    def _fernet_keys(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            parse_keys(value.get_secret_value())
        return value

    @model_validator(mode="after")
    def _long_tokens(self) -> ApiSettings:
        for name in ("admin_token", "callback_token", "metrics_token"):
            token = getattr(self, name)
            if token is not None and len(token.get_secret_value()) < MIN_TOKEN_LENGTH:
                raise ValueError(
                    f"SMSGW_{name.upper()} must be at least {MIN_TOKEN_LENGTH} characters"
                    " (e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')"
                )
        return self


class RetentionSettings(Group):
    """How long personal data is kept (see smsgateway.privacy.retention)."""

    model_config = variables("SMSGW_RETENTION_")

    days: float = Field(
        default=90.0,
        ge=0,
        description="Texts and numbers of finished messages, replies, webhook payloads and"
        " event answers are redacted after this many days (0: kept)",
    )
    check_seconds: float = Field(default=3600.0, gt=0, description="Time between passes")


class WebhookSettings(Group):
    """Webhooks to the marketplace."""

    model_config = variables("SMSGW_WEBHOOK_")

    timeout_seconds: float = Field(
        default=10.0, gt=0, description="Whole time one delivery may take, answer included"
    )
    allow_private_networks: bool = Field(
        default=False,
        description="Allow webhook URLs on loopback, private, link-local or reserved"
        " addresses (development, tests, private deployments)",
    )
    per_client_concurrency: int = Field(
        default=4, ge=1, le=100, description="Deliveries in flight per client, per worker"
    )
    retry_base_seconds: float = Field(default=5.0, gt=0)
    retry_max_seconds: float = Field(default=3600.0, gt=0)
    max_attempts: int = Field(default=30, ge=1)
