"""Attack: every route that takes the admin token must count wrong guesses."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from smsgateway.app import create_app
from smsgateway.runtime import Runtime
from tests.conftest import ADMIN_TOKEN

RIGHT = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
async def attacker(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    runtime.settings.api.auth_failures_per_minute = 3
    app = create_app(runtime=runtime)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/metrics"),
        ("PUT", "/v1/templates/booking.requested/asker/fr"),
    ],
)
async def test_admin_token_guesses_elsewhere_are_cut_too(
    attacker: httpx.AsyncClient, method: str, path: str
) -> None:
    # /metrics and the template writes take the admin token: guessing it there
    # must be as slow as on /v1/admin.
    for n in range(3):
        wrong = {"Authorization": f"Bearer guess-{n:02d}-0123456789abcdef0123456789"}
        answer = await attacker.request(method, path, headers=wrong, json={"text": "x"})
        assert answer.status_code == 401
    guess = {"Authorization": "Bearer guess-99-0123456789abcdef0123456789"}
    assert (
        await attacker.request(method, path, headers=guess, json={"text": "x"})
    ).status_code == 429
