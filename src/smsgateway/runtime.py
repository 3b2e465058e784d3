"""What a running process owns: settings, the database engine, the provider.

Built once by the app's lifespan or by the worker command, and handed to
request handlers and the dispatcher. Tests build one around their own provider.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from smsgateway import sealing
from smsgateway.clients.cache import ClientCache
from smsgateway.clients.ratelimit import RateLimiter
from smsgateway.config import Settings
from smsgateway.db import create_engine, session_factory
from smsgateway.observability.metrics import Metrics
from smsgateway.observability.provider import instrument
from smsgateway.pricing import Pricing, load_pricing
from smsgateway.providers.base import SmsProvider
from smsgateway.providers.health import CircuitBreaker
from smsgateway.templates.cache import TemplateCache

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    provider: SmsProvider
    pricing: Pricing
    # Set after a commit that queued messages, so an in-process dispatcher
    # wakes at once; other processes hear about it through LISTEN/NOTIFY.
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    # Per-client request buckets; per process, see clients.ratelimit.
    rate_limiter: RateLimiter = field(default_factory=RateLimiter)
    # This process's Prometheus instruments (see observability.metrics).
    metrics: Metrics = field(default_factory=Metrics)
    # Clients and stored templates read recently (clients.cache, templates.cache).
    client_cache: ClientCache = field(default_factory=lambda: ClientCache(0))
    template_cache: TemplateCache = field(default_factory=lambda: TemplateCache(0))
    # The dispatcher's circuit breaker, when this process runs one (metrics read it).
    breaker: CircuitBreaker | None = None

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    async def aclose(self) -> None:
        await self.provider.aclose()
        await self.engine.dispose()


def build_provider(settings: Settings) -> SmsProvider:
    if settings.provider.name == "fake":
        from smsgateway.providers.fake import FakeProvider

        return FakeProvider()
    from smsgateway.providers.ovh import build_ovh_provider

    missing = [
        name
        for name, value in (
            ("SMSGW_OVH_APPLICATION_KEY", settings.ovh.application_key),
            ("SMSGW_OVH_APPLICATION_SECRET", settings.ovh.application_secret),
            ("SMSGW_OVH_CONSUMER_KEY", settings.ovh.consumer_key),
            ("SMSGW_OVH_SERVICE_NAME", settings.ovh.service_name),
        )
        if not value
    ]
    if missing:
        raise RuntimeError("provider 'ovh' needs " + ", ".join(missing))
    assert settings.ovh.application_key and settings.ovh.application_secret
    assert settings.ovh.consumer_key and settings.ovh.service_name
    return build_ovh_provider(
        endpoint=settings.ovh.endpoint,
        application_key=settings.ovh.application_key.get_secret_value(),
        application_secret=settings.ovh.application_secret.get_secret_value(),
        consumer_key=settings.ovh.consumer_key.get_secret_value(),
        service_name=settings.ovh.service_name,
        sender=settings.ovh.sender or None,
        timeout=settings.ovh.timeout_seconds,
    )


def build_pricing(settings: Settings) -> Pricing:
    """The pricing file when ``SMSGW_PRICING_FILE`` is set, else the flat settings.

    Raises ``PricingFileError`` (a ``RuntimeError``) for a bad file, so a typo stops
    the service at start instead of mispricing every message.
    """
    if settings.pricing.file is not None:
        return load_pricing(settings.pricing.file)
    return Pricing(
        default_credits_per_part=Decimal(str(settings.pricing.credits_per_part)),
        credit_price=Decimal(str(settings.pricing.credit_price)),
        currency=settings.pricing.currency,
    )


def build_runtime(
    settings: Settings, provider: SmsProvider | None = None, *, metrics: Metrics | None = None
) -> Runtime:
    """A runtime; a provider built from the settings is timed and counted in ``metrics``.

    A ``provider`` given by the caller (tests) is used as it is: wrap it with
    ``observability.provider.instrument`` to have its calls measured.
    """
    engine = create_engine(settings.database.url, pool_size=settings.database.pool_size)
    use_secret_key(settings)
    metrics = metrics or Metrics()
    return Runtime(
        settings=settings,
        engine=engine,
        sessionmaker=session_factory(engine),
        provider=provider or instrument(build_provider(settings), metrics),
        pricing=build_pricing(settings),
        metrics=metrics,
        client_cache=ClientCache(settings.api.client_cache_seconds),
        template_cache=TemplateCache(settings.templates.cache_seconds),
    )


def use_secret_key(settings: Settings) -> None:
    """Seal webhook secrets with ``SMSGW_SECRET_KEY`` (see ``sealing``), or warn it is unset."""
    key = settings.api.secret_key
    sealing.configure(key.get_secret_value() if key else None)
    if key is None and settings.provider.name != "fake":
        log.warning("SMSGW_SECRET_KEY is not set: webhook secrets are stored unsealed")
