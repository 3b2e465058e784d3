"""IP allowlists, and X-Forwarded-For believed only from trusted proxies."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
from fastapi import FastAPI

from smsgateway.app import create_app
from smsgateway.clients.network import allowed, client_address, normalise_entry
from smsgateway.runtime import Runtime
from tests.factories import make_client

Call = Callable[..., Awaitable[httpx.Response]]


@pytest.fixture
async def app(runtime: Runtime) -> AsyncIterator[FastAPI]:
    app = create_app(runtime=runtime)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
def call_from(app: FastAPI) -> Call:
    """``GET /v1/messages`` with ``api_key`` as if from the TCP peer ``peer``."""

    async def call(
        peer: str, api_key: str, forwarded_for: list[str] | None = None
    ) -> httpx.Response:
        transport = httpx.ASGITransport(app=app, client=(peer, 1234))
        headers = [("Authorization", f"Bearer {api_key}")]
        headers += [("X-Forwarded-For", line) for line in forwarded_for or []]
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            return await http.get("/v1/messages", headers=headers)

    return call


async def test_only_listed_addresses_get_in(runtime: Runtime, call_from: Call) -> None:
    key = (await make_client(runtime, allowed_ips=["203.0.113.7", "198.51.100.0/24"])).api_key
    assert (await call_from("203.0.113.7", key)).status_code == 200
    assert (await call_from("198.51.100.99", key)).status_code == 200  # in the CIDR range
    refused = await call_from("203.0.113.8", key)
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/problem+json"
    problem = refused.json()
    assert problem["type"].endswith("/ip-not-allowed")
    assert "203.0.113.8" in problem["detail"]
    assert key not in refused.text
    assert (await call_from("198.51.101.1", key)).status_code == 403


async def test_ipv6_ranges_and_ipv4_mapped_peers(runtime: Runtime, call_from: Call) -> None:
    key = (await make_client(runtime, allowed_ips=["2001:db8::/32", "203.0.113.7"])).api_key
    assert (await call_from("2001:db8::5", key)).status_code == 200
    assert (await call_from("2001:db9::5", key)).status_code == 403
    # A dual-stack socket reports an IPv4 caller so.
    assert (await call_from("::ffff:203.0.113.7", key)).status_code == 200


async def test_no_allowlist_means_any_address(runtime: Runtime, call_from: Call) -> None:
    key = (await make_client(runtime, allowed_ips=[])).api_key
    assert (await call_from("192.0.2.1", key)).status_code == 200
    assert (await call_from("2001:db8::1", key)).status_code == 200


async def test_a_wrong_key_is_401_before_any_address_check(call_from: Call) -> None:
    assert (await call_from("203.0.113.7", "sgw_wrong")).status_code == 401


async def test_forwarded_for_is_ignored_from_an_untrusted_peer(
    runtime: Runtime, call_from: Call
) -> None:
    key = (await make_client(runtime, allowed_ips=["203.0.113.7"])).api_key
    assert (await call_from("198.51.100.1", key, ["203.0.113.7"])).status_code == 403
    runtime.settings.api.trusted_proxies = ["10.0.0.0/8"]
    assert (await call_from("198.51.100.1", key, ["203.0.113.7"])).status_code == 403


async def test_forwarded_for_is_believed_from_a_trusted_proxy(
    runtime: Runtime, call_from: Call
) -> None:
    key = (await make_client(runtime, allowed_ips=["203.0.113.7"])).api_key
    runtime.settings.api.trusted_proxies = ["10.0.0.0/8", "192.0.2.10"]
    assert (await call_from("10.0.0.5", key, ["203.0.113.7"])).status_code == 200
    assert (await call_from("10.0.0.5", key, ["198.51.100.1"])).status_code == 403
    # Two proxies of ours in a row, and the header split over several lines.
    assert (await call_from("192.0.2.10", key, ["203.0.113.7", "10.1.2.3"])).status_code == 200
    # Behind a trusted proxy without the header, the proxy itself is the caller.
    assert (await call_from("10.0.0.5", key)).status_code == 403


async def test_a_spoofed_leftmost_forwarded_for_does_not_win(
    runtime: Runtime, call_from: Call
) -> None:
    key = (await make_client(runtime, allowed_ips=["203.0.113.7"])).api_key
    runtime.settings.api.trusted_proxies = ["10.0.0.0/8"]
    # The caller at 198.51.100.1 wrote "203.0.113.7"; our proxy appended what it saw.
    spoofed = await call_from("10.0.0.5", key, ["203.0.113.7, 198.51.100.1"])
    assert spoofed.status_code == 403
    assert "198.51.100.1" in spoofed.json()["detail"]
    # A garbled chain is believed no further than the garbage.
    assert (await call_from("10.0.0.5", key, ["203.0.113.7, not-an-ip"])).status_code == 403


def test_client_address_walks_the_chain_from_the_right() -> None:
    proxies = ["10.0.0.0/8"]
    assert str(client_address("10.0.0.1", ["1.1.1.1, 2.2.2.2, 10.0.0.2"], proxies)) == "2.2.2.2"
    assert str(client_address("10.0.0.1", ["10.0.0.3, 10.0.0.2"], proxies)) == "10.0.0.3"
    assert str(client_address("10.0.0.1", ["[2001:db8::1]:443"], proxies)) == "2001:db8::1"
    assert str(client_address("10.0.0.1", ["2.2.2.2:5555"], proxies)) == "2.2.2.2"
    assert str(client_address("3.3.3.3", ["2.2.2.2"], proxies)) == "3.3.3.3"
    assert client_address("testclient", [], proxies) is None
    assert client_address(None, ["2.2.2.2"], proxies) is None
    # A misconfigured trusted proxy entry trusts nothing rather than failing requests.
    assert str(client_address("10.0.0.1", ["2.2.2.2"], ["bogus"])) == "10.0.0.1"


def test_allowed() -> None:
    assert allowed("192.0.2.1", [])
    assert allowed(None, [])
    assert not allowed(None, ["192.0.2.1"])
    assert allowed("192.0.2.1", ["2001:db8::/32", "192.0.2.0/30"])
    assert not allowed("192.0.2.4", ["192.0.2.0/30"])


@pytest.mark.parametrize(
    ("entry", "canonical"),
    [
        ("203.0.113.7", "203.0.113.7"),
        (" 203.0.113.0/24 ", "203.0.113.0/24"),
        ("203.0.113.7/32", "203.0.113.7"),
        ("2001:DB8:0::1", "2001:db8::1"),
        ("2001:db8::/32", "2001:db8::/32"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
    ],
)
def test_allowlist_entries_are_stored_in_canonical_form(entry: str, canonical: str) -> None:
    assert normalise_entry(entry) == canonical


@pytest.mark.parametrize("entry", ["", "10.0.0.1/24", "10.0.0.0/33", "300.1.1.1", "host", "::g"])
def test_bad_allowlist_entries_are_refused(entry: str) -> None:
    with pytest.raises(ValueError, match=r"host bits|not a valid|not an IP|empty"):
        normalise_entry(entry)
