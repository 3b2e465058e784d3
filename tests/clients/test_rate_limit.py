"""Per-client rate limit: 429 with Retry-After, refilled over time, one bucket per client."""

from __future__ import annotations

import asyncio

import httpx

from smsgateway.app import create_app
from smsgateway.clients.ratelimit import RateLimiter, retry_after_header
from smsgateway.runtime import Runtime
from tests.factories import make_client


async def test_the_third_immediate_request_at_two_a_second_is_refused(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    limited = (await make_client(runtime, "shop", rate_limit_per_second=2)).auth
    other = (await make_client(runtime, "other", rate_limit_per_second=2)).auth
    codes = [(await http.get("/v1/messages", headers=limited)).status_code for _ in range(2)]
    assert codes == [200, 200]
    refused = await http.get("/v1/messages", headers=limited)
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.headers["retry-after"] == "1"
    assert refused.json()["type"].endswith("/rate-limited")
    # Another client has its own bucket.
    assert (await http.get("/v1/messages", headers=other)).status_code == 200
    # Half a second brings back one token (2 a second), and only one.
    await asyncio.sleep(0.55)
    assert (await http.get("/v1/messages", headers=limited)).status_code == 200
    assert (await http.get("/v1/messages", headers=limited)).status_code == 429


async def test_the_server_default_applies_to_clients_without_their_own(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    runtime.settings.api.default_rate_limit_per_second = 1
    default = (await make_client(runtime, "shop")).auth
    own = (await make_client(runtime, "fast", rate_limit_per_second=100)).auth
    assert (await http.get("/v1/messages", headers=default)).status_code == 200
    assert (await http.get("/v1/messages", headers=default)).status_code == 429
    for _ in range(5):
        assert (await http.get("/v1/messages", headers=own)).status_code == 200


async def test_no_limit_by_default(http: httpx.AsyncClient, runtime: Runtime) -> None:
    auth = (await make_client(runtime, "shop")).auth
    for _ in range(20):
        assert (await http.get("/v1/messages", headers=auth)).status_code == 200


async def test_refused_addresses_spend_none_of_the_clients_rate(runtime: Runtime) -> None:
    auth = (
        await make_client(runtime, "shop", rate_limit_per_second=1, allowed_ips=["203.0.113.7"])
    ).auth
    app = create_app(runtime=runtime)
    async with app.router.lifespan_context(app):

        async def call(peer: str) -> int:
            transport = httpx.ASGITransport(app=app, client=(peer, 1234))
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
                return (await http.get("/v1/messages", headers=auth)).status_code

        assert [await call("198.51.100.1") for _ in range(3)] == [403, 403, 403]
        assert [await call("203.0.113.7") for _ in range(2)] == [200, 429]


def test_token_bucket_with_a_fake_clock() -> None:
    now = [100.0]
    limiter = RateLimiter(clock=lambda: now[0])
    assert [limiter.take("a", 3) for _ in range(3)] == [None, None, None]  # a burst of 3
    wait = limiter.take("a", 3)
    assert wait is not None and abs(wait - 1 / 3) < 1e-9
    now[0] += 1 / 3
    assert limiter.take("a", 3) is None
    assert limiter.take("a", 3) is not None
    now[0] += 60  # a long pause refills to the capacity, not beyond
    assert [limiter.take("a", 3) for _ in range(4)][-1] is not None
    # Below one a second the bucket still holds one request.
    assert limiter.take("slow", 0.2) is None
    slow_wait = limiter.take("slow", 0.2)
    assert slow_wait is not None and abs(slow_wait - 5) < 1e-9
    assert limiter.take("free", None) is None


def test_retry_after_is_whole_seconds_and_never_zero() -> None:
    assert retry_after_header(0.01) == "1"
    assert retry_after_header(1.0) == "1"
    assert retry_after_header(4.2) == "5"
