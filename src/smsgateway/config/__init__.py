"""Settings, read once from the environment (``SMSGW_*``), grouped by concern.

Each group is its own ``BaseSettings`` and reads its fields from flat variables: the
group's prefix plus the field name (``SMSGW_OVH_`` + ``sender``), or the variable a
field names itself (``SMSGW_LEASE_SECONDS``). The variable is each field's validation
alias, so an error in the environment names the variable to fix; in Python a field is
given by its name (``OvhSettings(sender="Acme")``).

A new setting goes into the group of its concern (``groups.py``, ``api.py``) under a flat
``SMSGW_*`` name, never a nested one (``SMSGW_OVH__SENDER``); ``tests/config/test_settings.py``
lists every variable.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from smsgateway.config.api import ApiSettings, RetentionSettings, WebhookSettings
from smsgateway.config.groups import (
    CampaignSettings,
    DatabaseSettings,
    DeliveryReportSettings,
    DispatchSettings,
    LocaleSettings,
    LogSettings,
    MarketingHoursSettings,
    MetricsSettings,
    OvhSettings,
    PricingSettings,
    ProviderSettings,
    QuietHoursSettings,
    ReminderSettings,
    ReplySettings,
    TemplateSettings,
    VerificationSettings,
    WorkerSettings,
)

__all__ = [
    "ApiSettings",
    "CampaignSettings",
    "DatabaseSettings",
    "DeliveryReportSettings",
    "DispatchSettings",
    "LocaleSettings",
    "LogSettings",
    "MarketingHoursSettings",
    "MetricsSettings",
    "OvhSettings",
    "PricingSettings",
    "ProviderSettings",
    "QuietHoursSettings",
    "ReminderSettings",
    "ReplySettings",
    "RetentionSettings",
    "Settings",
    "TemplateSettings",
    "VerificationSettings",
    "WebhookSettings",
    "WorkerSettings",
    "get_settings",
]


class Settings(BaseModel):
    """Every knob of the service, one group per concern. Secrets are ``SecretStr``.

    ``Settings()`` reads every group from the environment; a group given here
    (``Settings(ovh=OvhSettings(sender="Acme"))``) still reads the fields it is not given.
    """

    model_config = ConfigDict(extra="forbid")

    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    provider: ProviderSettings = Field(default_factory=ProviderSettings)
    ovh: OvhSettings = Field(default_factory=OvhSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    locale: LocaleSettings = Field(default_factory=LocaleSettings)
    verification: VerificationSettings = Field(default_factory=VerificationSettings)
    templates: TemplateSettings = Field(default_factory=TemplateSettings)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    dispatch: DispatchSettings = Field(default_factory=DispatchSettings)
    delivery_reports: DeliveryReportSettings = Field(default_factory=DeliveryReportSettings)
    replies: ReplySettings = Field(default_factory=ReplySettings)
    webhooks: WebhookSettings = Field(default_factory=WebhookSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    reminders: ReminderSettings = Field(default_factory=ReminderSettings)
    quiet_hours: QuietHoursSettings = Field(default_factory=QuietHoursSettings)
    marketing: MarketingHoursSettings = Field(default_factory=MarketingHoursSettings)
    campaigns: CampaignSettings = Field(default_factory=CampaignSettings)
    pricing: PricingSettings = Field(default_factory=PricingSettings)
    log: LogSettings = Field(default_factory=LogSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)

    @classmethod
    def from_environment(cls) -> Settings:
        """Every group read from the environment, with every bad variable in one error."""
        groups: dict[str, Any] = {}
        errors: list[Any] = []
        for name, field in cls.model_fields.items():
            assert field.default_factory is not None
            try:
                groups[name] = field.default_factory()  # type: ignore[call-arg]
            except ValidationError as exc:
                errors.extend(exc.errors())
        if errors:
            raise ValidationError.from_exception_data(cls.__name__, errors)
        return cls(**groups)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings.from_environment()
