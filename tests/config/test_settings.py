"""Settings: every SMSGW_* variable of the flat settings is still read, into its group.

``VARIABLES`` is frozen from the flat ``Settings`` the groups replaced (74 variables):
a variable may be added, never renamed or dropped, since deployments set these names.
"""

from __future__ import annotations

import os
from datetime import time
from functools import reduce
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from smsgateway.config import Settings, WorkerSettings, get_settings

# (variable, value in the environment, field it lands in, value read)
VARIABLES: list[tuple[str, str, str, Any]] = [
    (
        "SMSGW_DATABASE_URL",
        "postgresql+asyncpg://gw@db/gw",
        "database.url",
        "postgresql+asyncpg://gw@db/gw",
    ),
    ("SMSGW_DATABASE_POOL_SIZE", "25", "database.pool_size", 25),
    ("SMSGW_PROVIDER", "ovh", "provider.name", "ovh"),
    ("SMSGW_OVH_ENDPOINT", "ovh-ca", "ovh.endpoint", "ovh-ca"),
    ("SMSGW_OVH_APPLICATION_KEY", "app-key", "ovh.application_key", SecretStr("app-key")),
    (
        "SMSGW_OVH_APPLICATION_SECRET",
        "app-secret",
        "ovh.application_secret",
        SecretStr("app-secret"),
    ),
    ("SMSGW_OVH_CONSUMER_KEY", "consumer-key", "ovh.consumer_key", SecretStr("consumer-key")),
    ("SMSGW_OVH_SERVICE_NAME", "sms-ab12345-1", "ovh.service_name", "sms-ab12345-1"),
    ("SMSGW_OVH_SENDER", "Kayakr", "ovh.sender", "Kayakr"),
    ("SMSGW_OVH_TIMEOUT_SECONDS", "3.5", "ovh.timeout_seconds", 3.5),
    ("SMSGW_ADMIN_TOKEN", "a" * 32, "api.admin_token", SecretStr("a" * 32)),
    ("SMSGW_CALLBACK_TOKEN", "c" * 32, "api.callback_token", SecretStr("c" * 32)),
    ("SMSGW_DEFAULT_LANGUAGE", "fr", "locale.default_language", "fr"),
    ("SMSGW_DEFAULT_REGION", "FR", "locale.default_region", "FR"),
    ("SMSGW_REQUIRE_VERIFIED_PHONE", "false", "verification.required", False),
    ("SMSGW_VERIFICATION_CODE_TTL_SECONDS", "900", "verification.code_ttl_seconds", 900),
    ("SMSGW_VERIFICATION_MAX_ATTEMPTS", "3", "verification.max_attempts", 3),
    ("SMSGW_VERIFICATION_SERVICE_NAME", "Kayakr", "verification.service_name", "Kayakr"),
    ("SMSGW_SMART_ENCODING", "false", "templates.smart_encoding", False),
    ("SMSGW_TEMPLATE_MAX_PARTS", "4", "templates.max_parts", 4),
    ("SMSGW_WORKER_BATCH_SIZE", "70", "worker.batch_size", 70),
    ("SMSGW_WORKER_CONCURRENCY", "16", "worker.concurrency", 16),
    ("SMSGW_WORKER_POLL_SECONDS", "0.5", "worker.poll_seconds", 0.5),
    ("SMSGW_LEASE_SECONDS", "45", "worker.lease_seconds", 45.0),
    ("SMSGW_RETRY_BASE_SECONDS", "3", "dispatch.retry_base_seconds", 3.0),
    ("SMSGW_RETRY_MAX_SECONDS", "300", "dispatch.retry_max_seconds", 300.0),
    ("SMSGW_MAX_ATTEMPTS", "7", "dispatch.max_attempts", 7),
    ("SMSGW_UNCERTAIN_SETTLE_SECONDS", "90", "dispatch.uncertain_settle_seconds", 90.0),
    ("SMSGW_MESSAGE_VALIDITY_HOURS", "12", "dispatch.message_validity_hours", 12.0),
    ("SMSGW_BATCH_MAX_RECEIVERS", "100", "dispatch.batch_max_receivers", 100),
    ("SMSGW_PROVIDER_CALLS_PER_MINUTE", "0", "provider.calls_per_minute", 0),
    ("SMSGW_CIRCUIT_FAILURE_THRESHOLD", "9", "provider.circuit_failure_threshold", 9),
    ("SMSGW_CIRCUIT_COOLDOWN_SECONDS", "15", "provider.circuit_cooldown_seconds", 15.0),
    ("SMSGW_DLR_CHECK_AFTER_SECONDS", "1800", "delivery_reports.check_after_seconds", 1800.0),
    ("SMSGW_DLR_CHECK_INTERVAL_SECONDS", "0", "delivery_reports.check_interval_seconds", 0.0),
    ("SMSGW_DLR_GIVE_UP_HOURS", "48", "delivery_reports.give_up_hours", 48.0),
    ("SMSGW_INCOMING_POLL_SECONDS", "10", "replies.incoming_poll_seconds", 10.0),
    ("SMSGW_BLACKLIST_SYNC_SECONDS", "0", "replies.blacklist_sync_seconds", 0.0),
    ("SMSGW_WEBHOOK_TIMEOUT_SECONDS", "4", "webhooks.timeout_seconds", 4.0),
    ("SMSGW_WEBHOOK_RETRY_BASE_SECONDS", "1", "webhooks.retry_base_seconds", 1.0),
    ("SMSGW_WEBHOOK_RETRY_MAX_SECONDS", "60", "webhooks.retry_max_seconds", 60.0),
    ("SMSGW_WEBHOOK_MAX_ATTEMPTS", "12", "webhooks.max_attempts", 12),
    ("SMSGW_REMINDERS_ENABLED", "false", "reminders.enabled", False),
    ("SMSGW_REMINDER_LEAD_HOURS", "6", "reminders.lead_hours", 6.0),
    ("SMSGW_EXPIRY_REMINDER_LEAD_HOURS", "1", "reminders.expiry_lead_hours", 1.0),
    ("SMSGW_QUIET_HOURS_ENABLED", "false", "quiet_hours.enabled", False),
    ("SMSGW_QUIET_HOURS_START", "21:30", "quiet_hours.start", time(21, 30)),
    ("SMSGW_QUIET_HOURS_END", "07:15", "quiet_hours.end", time(7, 15)),
    (
        "SMSGW_QUIET_HOURS_FALLBACK_ZONE",
        "America/New_York",
        "quiet_hours.fallback_zone",
        "America/New_York",
    ),
    ("SMSGW_MARKETING_HOURS_ENABLED", "false", "marketing.hours_enabled", False),
    ("SMSGW_MARKETING_HOURS_START", "09:00", "marketing.hours_start", time(9, 0)),
    ("SMSGW_MARKETING_HOURS_END", "18:00", "marketing.hours_end", time(18, 0)),
    ("SMSGW_MARKETING_DAYS", "[5, 1, 1]", "marketing.days", [1, 5]),
    ("SMSGW_MARKETING_ZONE", "Europe/Warsaw", "marketing.zone", "Europe/Warsaw"),
    ("SMSGW_CAMPAIGN_RATE_PER_SECOND", "25", "campaigns.rate_per_second", 25.0),
    ("SMSGW_CAMPAIGN_MAX_ROWS", "5000", "campaigns.max_rows", 5000),
    ("SMSGW_CAMPAIGN_BATCH_SIZE", "200", "campaigns.batch_size", 200),
    ("SMSGW_TRUSTED_PROXIES", '["10.0.0.0/8"]', "api.trusted_proxies", ["10.0.0.0/8"]),
    ("SMSGW_DEFAULT_RATE_LIMIT_PER_SECOND", "2.5", "api.default_rate_limit_per_second", 2.5),
    ("SMSGW_CLIENT_CACHE_SECONDS", "0", "api.client_cache_seconds", 0.0),
    ("SMSGW_TEMPLATE_CACHE_SECONDS", "0", "templates.cache_seconds", 0.0),
    ("SMSGW_MAX_BODY_BYTES", "2048", "api.max_body_bytes", 2048),
    (
        "SMSGW_MAX_BODY_BYTES_BY_PATH",
        '{"/v1/campaigns": 4096}',
        "api.max_body_bytes_by_path",
        {"/v1/campaigns": 4096},
    ),
    ("SMSGW_CREDITS_PER_PART", "1.5", "pricing.credits_per_part", 1.5),
    ("SMSGW_CREDIT_PRICE", "0.05", "pricing.credit_price", 0.05),
    ("SMSGW_CURRENCY", "PLN", "pricing.currency", "PLN"),
    (
        "SMSGW_PRICING_FILE",
        "/etc/smsgateway/pricing.json",
        "pricing.file",
        Path("/etc/smsgateway/pricing.json"),
    ),
    ("SMSGW_LOG_LEVEL", "DEBUG", "log.level", "DEBUG"),
    ("SMSGW_LOG_FORMAT", "json", "log.format", "json"),
    ("SMSGW_ACCESS_LOG", "false", "log.access_log", False),
    ("SMSGW_METRICS_CACHE_SECONDS", "30", "metrics.cache_seconds", 30.0),
    ("SMSGW_METRICS_MESSAGES_WINDOW_SECONDS", "3600", "metrics.messages_window_seconds", 3600.0),
    ("SMSGW_WORKER_METRICS_PORT", "9100", "metrics.worker_port", 9100),
    ("SMSGW_WORKER_METRICS_HOST", "10.1.2.3", "metrics.worker_host", "10.1.2.3"),
]

# Variables added since, in the same form; each read like the others.
ADDED: list[tuple[str, str, str, Any]] = [
    ("SMSGW_LOOP_STALL_SECONDS", "30", "worker.stall_seconds", 30.0),
    (
        "SMSGW_WEBHOOK_ALLOW_PRIVATE_NETWORKS",
        "true",
        "webhooks.allow_private_networks",
        True,
    ),
    ("SMSGW_WEBHOOK_PER_CLIENT_CONCURRENCY", "2", "webhooks.per_client_concurrency", 2),
    ("SMSGW_AUTH_FAILURES_PER_MINUTE", "3", "api.auth_failures_per_minute", 3),
    ("SMSGW_BODY_READ_TIMEOUT_SECONDS", "5", "api.body_read_timeout_seconds", 5.0),
    ("SMSGW_ALLOW_NUMBER_TYPES", '["fixed_line"]', "locale.allow_number_types", ["fixed_line"]),
    (
        "SMSGW_VERIFICATION_PER_NUMBER_PER_HOUR",
        "5",
        "verification.per_number_per_hour",
        5,
    ),
    (
        "SMSGW_VERIFICATION_PER_CLIENT_PER_HOUR",
        "50",
        "verification.per_client_per_hour",
        50,
    ),
    ("SMSGW_RETENTION_DAYS", "30", "retention.days", 30.0),
    ("SMSGW_RETENTION_CHECK_SECONDS", "60", "retention.check_seconds", 60.0),
    (
        "SMSGW_DEFAULT_ALLOWED_COUNTRIES",
        '["FR", "BE"]',
        "api.default_allowed_countries",
        ["FR", "BE"],
    ),
    ("SMSGW_METRICS_TOKEN", "m" * 32, "api.metrics_token", SecretStr("m" * 32)),
    ("SMSGW_MAX_SCHEDULE_DAYS", "30", "dispatch.max_schedule_days", 30.0),
    ("SMSGW_PROVIDER_LOOKUP_SHARE", "0.5", "provider.lookup_share", 0.5),
    ("SMSGW_PROVIDER_LISTING_LAG_SECONDS", "90", "provider.listing_lag_seconds", 90.0),
]

# Variables any text is valid for; every other one refuses "not a value!".
FREE_TEXT = {
    "SMSGW_DATABASE_URL",
    "SMSGW_OVH_ENDPOINT",
    "SMSGW_OVH_APPLICATION_KEY",
    "SMSGW_OVH_APPLICATION_SECRET",
    "SMSGW_OVH_CONSUMER_KEY",
    "SMSGW_OVH_SERVICE_NAME",
    "SMSGW_OVH_SENDER",
    "SMSGW_ADMIN_TOKEN",
    "SMSGW_METRICS_TOKEN",
    "SMSGW_CALLBACK_TOKEN",
    "SMSGW_DEFAULT_LANGUAGE",
    "SMSGW_DEFAULT_REGION",
    "SMSGW_VERIFICATION_SERVICE_NAME",
    "SMSGW_CURRENCY",
    "SMSGW_PRICING_FILE",
    "SMSGW_LOG_LEVEL",
    "SMSGW_WORKER_METRICS_HOST",
}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("SMSGW_"):
            monkeypatch.delenv(name)


def _field(settings: Settings, path: str) -> Any:
    value = reduce(getattr, path.split("."), settings)
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def _plain(expected: Any) -> Any:
    return expected.get_secret_value() if isinstance(expected, SecretStr) else expected


def _read_variables() -> set[str]:
    """The variable of every field of every group."""
    return {
        str(field.validation_alias)
        for group in Settings.model_fields.values()
        for field in group.annotation.model_fields.values()  # type: ignore[union-attr]
    }


def test_every_variable_of_the_flat_settings_is_still_read() -> None:
    read = _read_variables()
    assert {variable for variable, *_ in VARIABLES + ADDED} <= read
    assert len(VARIABLES) == 74
    # Flat names only: no nested delimiter has crept in.
    assert all(name.startswith("SMSGW_") and "__" not in name for name in read)


@pytest.mark.parametrize(("variable", "raw", "path", "expected"), VARIABLES + ADDED)
def test_each_variable_lands_in_its_field_and_nowhere_else(
    monkeypatch: pytest.MonkeyPatch, variable: str, raw: str, path: str, expected: Any
) -> None:
    defaults = Settings.from_environment()
    monkeypatch.setenv(variable, raw)
    settings = Settings.from_environment()
    assert _field(settings, path) == _plain(expected)
    assert _field(defaults, path) != _plain(expected)
    for _, _, other, _ in VARIABLES:
        if other != path:
            assert _field(settings, other) == _field(defaults, other), other


def test_all_variables_together(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable, raw, _, _ in VARIABLES:
        monkeypatch.setenv(variable, raw)
    settings = Settings.from_environment()
    for _, _, path, expected in VARIABLES:
        assert _field(settings, path) == _plain(expected), path


def test_names_are_case_insensitive_as_before(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("smsgw_ovh_sender", "Kayakr")
    assert Settings().ovh.sender == "Kayakr"


def test_settings_given_in_python_win_over_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SMSGW_LEASE_SECONDS", "45")
    monkeypatch.setenv("SMSGW_WORKER_POLL_SECONDS", "0.5")
    settings = Settings(worker=WorkerSettings(lease_seconds=5))
    assert (settings.worker.lease_seconds, settings.worker.poll_seconds) == (5, 0.5)


@pytest.mark.parametrize(
    "variable", [variable for variable, *_ in VARIABLES if variable not in FREE_TEXT]
)
def test_an_invalid_value_is_an_error_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(variable, "not a value!")
    with pytest.raises(ValidationError) as caught:
        Settings.from_environment()
    assert [error["loc"] for error in caught.value.errors()] == [(variable,)]
    assert variable in str(caught.value)


@pytest.mark.parametrize(
    ("variable", "raw"),
    [
        ("SMSGW_PROVIDER", "sms77"),
        ("SMSGW_LOG_FORMAT", "xml"),
        ("SMSGW_OVH_TIMEOUT_SECONDS", "0"),
        ("SMSGW_VERIFICATION_CODE_TTL_SECONDS", "30"),
        ("SMSGW_VERIFICATION_SERVICE_NAME", "x" * 41),
        ("SMSGW_WORKER_METRICS_PORT", "70000"),
        ("SMSGW_MARKETING_DAYS", "[0]"),
        ("SMSGW_QUIET_HOURS_FALLBACK_ZONE", "Mars/Olympus_Mons"),
    ],
)
def test_an_unknown_or_out_of_range_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, raw: str
) -> None:
    monkeypatch.setenv(variable, raw)
    with pytest.raises(ValidationError, match=variable):
        Settings.from_environment()


def test_every_bad_variable_is_reported_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMSGW_PROVIDER", "sms77")
    monkeypatch.setenv("SMSGW_WEBHOOK_MAX_ATTEMPTS", "0")
    monkeypatch.setenv("SMSGW_QUIET_HOURS_START", "08:00")
    monkeypatch.setenv("SMSGW_QUIET_HOURS_END", "08:00")
    get_settings.cache_clear()
    try:
        with pytest.raises(ValidationError) as caught:
            get_settings()
    finally:
        get_settings.cache_clear()
    text = str(caught.value)
    assert "3 validation errors for Settings" in text
    for variable in ("SMSGW_PROVIDER", "SMSGW_WEBHOOK_MAX_ATTEMPTS", "SMSGW_QUIET_HOURS_START"):
        assert variable in text


def test_a_flat_name_left_in_python_is_refused() -> None:
    with pytest.raises(ValidationError, match="database_url"):
        Settings.model_validate({"database_url": "sqlite+aiosqlite://"})
    with pytest.raises(ValidationError, match="worker_poll_seconds"):
        WorkerSettings.model_validate({"worker_poll_seconds": 1})


@pytest.mark.parametrize(
    "variable", ["SMSGW_ADMIN_TOKEN", "SMSGW_CALLBACK_TOKEN", "SMSGW_METRICS_TOKEN"]
)
def test_short_tokens_are_refused_at_start_up(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(variable, "x" * 31)
    with pytest.raises(ValueError, match=f"{variable} must be at least 32 characters"):
        Settings.from_environment()
    monkeypatch.setenv(variable, "x" * 32)
    Settings.from_environment()
