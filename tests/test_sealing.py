"""Webhook secrets sealed at rest with SMSGW_SECRET_KEY, keys rotated without downtime."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import httpx
import pytest
import respx
from cryptography.fernet import Fernet
from sqlalchemy import text

from smsgateway import sealing
from smsgateway.clients.service import reseal_secrets
from smsgateway.config import Settings
from smsgateway.models.clients import ApiClient
from smsgateway.runtime import Runtime
from smsgateway.webhooks.sender import WebhookSender
from smsgateway.webhooks.service import enqueue
from smsgateway.webhooks.signing import SIGNATURE_HEADER, verify
from tests.conftest import ADMIN_TOKEN
from tests.factories import make_client

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
HOOK = "https://marketplace.test/hooks/sms"
OLD, NEW = Fernet.generate_key().decode(), Fernet.generate_key().decode()


@pytest.fixture(autouse=True)
def _unsealed_after() -> Iterator[None]:
    yield
    sealing.configure(None)


async def _raw_secret(runtime: Runtime, client_id: str) -> str:
    async with runtime.sessionmaker() as session:
        raw = await session.scalar(
            text("SELECT webhook_secret FROM api_clients WHERE id = :id"), {"id": client_id}
        )
    assert isinstance(raw, str)
    return raw


async def test_a_secret_is_stored_sealed_and_signs_with_its_plain_value(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    sealing.configure(OLD)
    created = await http.post(
        "/v1/admin/clients", json={"name": "shop", "webhook_url": HOOK}, headers=ADMIN
    )
    assert created.status_code == 201, created.text
    client_id, secret = created.json()["id"], created.json()["webhook_secret"]
    raw = await _raw_secret(runtime, client_id)
    assert raw.startswith("fernet:") and secret not in raw
    assert Fernet(OLD).decrypt(raw.removeprefix("fernet:").encode()).decode() == secret

    async with runtime.sessionmaker() as session, session.begin():
        client = await session.get(ApiClient, client_id)
        assert client is not None and client.webhook_secret == secret
        assert enqueue(session, client, "quota.low", {}) is not None
    with respx.mock() as receiver:
        route = receiver.post(HOOK).respond(204)
        async with httpx.AsyncClient() as client_http:
            await WebhookSender(runtime, client_http, worker_id="w").run_once()
    request = route.calls.last.request
    assert verify(secret, request.headers[SIGNATURE_HEADER], request.content, now=int(time.time()))


async def test_keys_rotate_new_first_then_reseal_then_drop_the_old(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    # A client made before any key, one sealed with the old key.
    plain_client = await http.post("/v1/admin/clients", json={"name": "plain"}, headers=ADMIN)
    sealing.configure(OLD)
    old_client = await http.post("/v1/admin/clients", json={"name": "old"}, headers=ADMIN)
    ids = [plain_client.json()["id"], old_client.json()["id"]]
    secrets = [plain_client.json()["webhook_secret"], old_client.json()["webhook_secret"]]
    assert not (await _raw_secret(runtime, ids[0])).startswith("fernet:")

    sealing.configure(f"{NEW},{OLD}")  # new first: it seals, both open
    async with runtime.sessionmaker() as session, session.begin():
        assert await reseal_secrets(session) == 2
    async with runtime.sessionmaker() as session, session.begin():
        assert await reseal_secrets(session) == 0  # nothing left to do

    sealing.configure(NEW)  # the old key dropped
    for client_id, secret in zip(ids, secrets, strict=True):
        raw = await _raw_secret(runtime, client_id)
        assert Fernet(NEW).decrypt(raw.removeprefix("fernet:").encode()).decode() == secret
        shown = await http.get(f"/v1/admin/clients/{client_id}", headers=ADMIN)
        assert shown.status_code == 200


async def test_a_sealed_secret_without_its_key_is_an_error_not_a_wrong_signature(
    runtime: Runtime,
) -> None:
    sealing.configure(OLD)
    made = await make_client(runtime, "shop", webhook_url=HOOK)
    sealing.configure(NEW)
    with pytest.raises(sealing.SealedUnreadable):
        async with runtime.sessionmaker() as session:
            await session.get(ApiClient, made.id)


def test_a_malformed_key_stops_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMSGW_SECRET_KEY", f"{NEW},not-a-key")
    with pytest.raises(ValueError, match="SMSGW_SECRET_KEY: key 2 is not a Fernet key"):
        Settings.from_environment()
    monkeypatch.setenv("SMSGW_SECRET_KEY", f"{NEW},{OLD}")
    assert Settings.from_environment().api.secret_key is not None


OLD, NEW = Fernet.generate_key().decode(), Fernet.generate_key().decode()


@pytest.fixture(autouse=True)
def _unsealed_after() -> Iterator[None]:
    yield
    sealing.configure(None)


async def test_an_unreadable_secret_only_stops_its_own_clients_webhooks(runtime: Runtime) -> None:
    """Sealed under a key since dropped (say, by a process still on the old key list
    after reseal-secrets ran): that client's webhooks fail; the others' still go."""
    sealing.configure(OLD)
    lost = (await make_client(runtime, "lost", webhook_url="https://lost.test/h")).row
    sealing.configure(NEW)
    fine = (await make_client(runtime, "fine", webhook_url="https://fine.test/h")).row
    async with runtime.sessionmaker() as session, session.begin():
        enqueue(session, lost, "quota.low", {})
        enqueue(session, fine, "quota.low", {})
    with respx.mock:
        respx.post("https://lost.test/h").respond(200)
        hit = respx.post("https://fine.test/h").respond(200)
        async with httpx.AsyncClient() as http:
            with contextlib.suppress(sealing.SealedUnreadable):
                await WebhookSender(runtime, http, worker_id="w").run_once()
        assert hit.called, "one unreadable secret stopped another client's webhook"
