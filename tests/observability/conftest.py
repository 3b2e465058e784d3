"""The suite's runtime with its provider timed and counted, and gauges never cached."""

from __future__ import annotations

import pytest

from smsgateway.config import Settings
from smsgateway.observability.provider import instrument
from smsgateway.runtime import Runtime
from tests.factories import make_client


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"metrics": settings.metrics.model_copy(update={"cache_seconds": 0.0})}
    )


@pytest.fixture
def observed(runtime: Runtime) -> Runtime:
    """``runtime`` whose provider calls land in ``runtime.metrics`` (as in production)."""
    runtime.provider = instrument(runtime.provider, runtime.metrics)
    return runtime


@pytest.fixture
async def shop_auth(observed: Runtime) -> dict[str, str]:
    """A client with a quota of 100 credits, an alert threshold and a webhook URL."""
    shop = await make_client(
        observed,
        quota=100,
        alert_threshold=10,
        webhook_url="https://shop.example/hooks",
    )
    return shop.auth
