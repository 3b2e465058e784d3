"""Wrong admin and callback tokens: a few a minute per address, then 429 until it ends."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from smsgateway.app import create_app
from smsgateway.runtime import Runtime
from tests.conftest import ADMIN_TOKEN, CALLBACK_TOKEN

RIGHT = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
WRONG = {"Authorization": "Bearer not-the-admin-token-0123456789abcdef"}


@pytest.fixture
async def guarded(runtime: Runtime) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """Two callers, from two addresses, of an app allowing 3 failures a minute."""
    runtime.settings.api.auth_failures_per_minute = 3
    runtime.settings.api.trusted_proxies = ["127.0.0.1"]
    app = create_app(runtime=runtime)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 5000))
        async with (
            httpx.AsyncClient(
                transport=transport,
                base_url="http://test",
                headers={"X-Forwarded-For": "203.0.113.7"},
            ) as attacker,
            httpx.AsyncClient(
                transport=transport,
                base_url="http://test",
                headers={"X-Forwarded-For": "198.51.100.20"},
            ) as ops,
        ):
            yield attacker, ops


async def test_admin_guesses_are_cut_per_address(
    guarded: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    attacker, ops = guarded
    for _ in range(3):
        assert (await attacker.get("/v1/admin/clients", headers=WRONG)).status_code == 401
    refused = await attacker.get("/v1/admin/clients", headers=WRONG)
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.json()["type"].endswith("/too-many-failed-attempts")
    # Even the right token, from that address, until the minute ends.
    assert (await attacker.get("/v1/admin/clients", headers=RIGHT)).status_code == 429
    # Another address (behind the same trusted proxy) is not locked out.
    assert (await ops.get("/v1/admin/clients", headers=RIGHT)).status_code == 200


async def test_callback_token_guesses_are_cut_per_address(
    guarded: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    attacker, ops = guarded
    for n in range(3):
        wrong = await attacker.get(f"/v1/providers/ovh/guess-{n}/dlr", params={"id": "1"})
        assert wrong.status_code == 404
    assert (await attacker.get("/v1/providers/ovh/guess-9/dlr")).status_code == 429
    right = f"/v1/providers/ovh/{CALLBACK_TOKEN}/dlr"
    assert (await attacker.get(right, params={"id": "1", "dlr": "1"})).status_code == 429
    assert (await ops.get(right, params={"id": "1", "dlr": "1"})).status_code == 200
    # Admin failures are counted apart from callback ones.
    assert (await attacker.get("/v1/admin/clients", headers=RIGHT)).status_code == 200


async def test_right_tokens_are_never_counted(
    guarded: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    attacker, _ = guarded
    for _ in range(10):
        assert (await attacker.get("/v1/admin/clients", headers=RIGHT)).status_code == 200


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
