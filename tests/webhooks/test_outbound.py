"""Webhook URLs: http(s) without credentials, public addresses only, checked when saved
and again against the address actually connected to (DNS rebinding)."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from smsgateway.models.clients import ApiClient
from smsgateway.models.webhooks import WebhookDelivery
from smsgateway.runtime import Runtime
from smsgateway.webhooks import outbound
from smsgateway.webhooks.outbound import BlockedDestination, check_destination, pin
from smsgateway.webhooks.sender import WebhookSender
from smsgateway.webhooks.service import enqueue
from tests.conftest import ADMIN_TOKEN
from tests.factories import make_client

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
PUBLIC = "93.184.215.14"


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hooks",
        "http://10.0.0.7/hooks",
        "http://192.168.1.1/hooks",
        "http://172.16.0.1/hooks",
        "http://100.64.0.1/hooks",  # shared address space
        "http://169.254.169.254/latest/meta-data",  # cloud metadata
        "http://[::1]/hooks",
        "http://[::ffff:127.0.0.1]/hooks",
        "http://[fd00::1]/hooks",
        "http://224.0.0.1/hooks",
        "http://0.0.0.0/hooks",
        "http://localhost:5432/",
    ],
)
async def test_internal_addresses_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="loopback, private or reserved"):
        await check_destination(url, allow_private=False)
    await check_destination(url, allow_private=True)  # development, tests


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://hooks.example/x", "http or https"),
        ("https://user:pass@hooks.example/x", "user name or password"),
        ("https://token@hooks.example/x", "user name or password"),
    ],
)
async def test_only_http_without_credentials(url: str, why: str) -> None:
    for allow in (False, True):
        with pytest.raises(ValueError, match=why):
            await check_destination(url, allow_private=allow)


async def test_a_public_address_is_allowed_and_a_name_that_does_not_resolve_is_not() -> None:
    await check_destination(f"https://{PUBLIC}/hooks", allow_private=False)
    with pytest.raises(ValueError, match="does not resolve"):
        await check_destination("https://nowhere.invalid/hooks", allow_private=False)


async def test_the_admin_api_refuses_internal_and_credentialed_urls(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    runtime.settings.webhooks.allow_private_networks = False
    for url, slug in (
        ("http://169.254.169.254/latest", "webhook-url-not-allowed"),
        ("https://a:b@hooks.example/x", "validation-error"),
    ):
        body = {"name": f"shop-{slug}", "webhook_url": url}
        created = await http.post("/v1/admin/clients", json=body, headers=ADMIN)
        assert created.status_code == 422, created.text
        assert created.json()["type"].endswith(slug)
        assert "body.webhook_url" in [e["field"] for e in created.json()["errors"]]
    client = await make_client(runtime, "shop")
    changed = await http.patch(
        f"/v1/admin/clients/{client.id}",
        json={"webhook_url": "http://127.0.0.1:8000/"},
        headers=ADMIN,
    )
    assert changed.status_code == 422, changed.text


def _resolving_to(*answers: str) -> Any:
    """A ``getaddrinfo`` that gives each answer in turn (the last one then on)."""
    given = list(answers)

    def getaddrinfo(host: str, port: int, *_: Any, **__: Any) -> list[Any]:
        address = given.pop(0) if len(given) > 1 else given[0]
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    return getaddrinfo


async def test_a_name_rebound_to_loopback_after_the_check_is_not_connected_to(
    http: httpx.AsyncClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Public when saved, loopback when delivered: the delivery never connects."""
    connections = 0

    async def receiver(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(receiver, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    monkeypatch.setattr(socket, "getaddrinfo", _resolving_to(PUBLIC, "127.0.0.1"))
    runtime.settings.webhooks.allow_private_networks = False
    try:
        body = {"name": "rebinder", "webhook_url": f"http://hooks.rebind.example:{port}/h"}
        created = await http.post("/v1/admin/clients", json=body, headers=ADMIN)
        assert created.status_code == 201, created.text
        client_id = created.json()["id"]
        async with runtime.sessionmaker() as session, session.begin():
            client = await session.get(ApiClient, client_id)
            assert client is not None
            delivery = enqueue(session, client, "quota.low", {"credits_left": 1.0})
        assert delivery is not None
        async with httpx.AsyncClient() as client_http:
            await WebhookSender(runtime, client_http, worker_id="w").run_once()
        async with runtime.sessionmaker() as session:
            stored = await session.get(WebhookDelivery, delivery.id)
        assert stored is not None
        assert (stored.status, stored.last_error) == ("pending", "address not allowed")
        assert connections == 0
    finally:
        server.close()


async def test_a_delivery_goes_to_the_checked_address_with_its_own_host(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pinned: connected to the address that was checked, ``Host`` and SNI the URL's."""
    seen: list[bytes] = []

    async def receiver(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(receiver, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    # Checked, the name gives the receiver's address; asked again, another one.
    monkeypatch.setattr(socket, "getaddrinfo", _resolving_to("127.0.0.1", "127.0.0.2"))
    monkeypatch.setattr(outbound, "is_public", lambda address: address == "127.0.0.1")
    try:
        url = f"http://hooks.shop.example:{port}/sms?x=1"
        client = (await make_client(runtime, "shop", webhook_url=url)).row
        runtime.settings.webhooks.allow_private_networks = False
        async with runtime.sessionmaker() as session, session.begin():
            assert enqueue(session, client, "quota.low", {}) is not None
        async with httpx.AsyncClient() as client_http:
            await WebhookSender(runtime, client_http, worker_id="w").run_once()
        assert len(seen) == 1  # at the address checked, not the one asked again
        assert f"host: hooks.shop.example:{port}".encode() in seen[0].lower()
    finally:
        server.close()
    monkeypatch.setattr(socket, "getaddrinfo", _resolving_to("127.0.0.1"))
    target = await pin(url, allow_private=False)
    assert str(target.url) == f"http://127.0.0.1:{port}/sms?x=1"
    https = await pin("https://hooks.shop.example/x", allow_private=False)
    assert https.extensions == {"sni_hostname": "hooks.shop.example"}


async def test_pin_refuses_a_name_with_any_internal_address(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def mixed(host: str, port: int, *_: Any, **__: Any) -> list[Any]:
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", (PUBLIC, port)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.1.2.3", port)),
        ]

    monkeypatch.setattr(socket, "getaddrinfo", mixed)
    with pytest.raises(BlockedDestination):
        await pin("https://hooks.mixed.example/x", allow_private=False)


async def test_disallowed_rows_keep_no_lease(runtime: Runtime) -> None:
    """A blocked delivery is retried later like any failure, not left leased."""
    client = (await make_client(runtime, "shop", webhook_url="http://10.9.9.9/h")).row
    runtime.settings.webhooks.allow_private_networks = False
    async with runtime.sessionmaker() as session, session.begin():
        delivery = enqueue(session, client, "quota.low", {})
    assert delivery is not None
    async with httpx.AsyncClient() as client_http:
        await WebhookSender(runtime, client_http, worker_id="w").run_once()
    async with runtime.sessionmaker() as session:
        stored = await session.get(WebhookDelivery, delivery.id)
    assert stored is not None and stored.lease_owner is None
    assert stored.next_attempt_at is not None
    async with runtime.sessionmaker() as session, session.begin():
        await session.execute(update(ApiClient).values(webhook_url=None))
