"""Attack: one secret no key opens stops every client's webhooks."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import httpx
import pytest
import respx
from cryptography.fernet import Fernet

from smsgateway import sealing
from smsgateway.runtime import Runtime
from smsgateway.webhooks.sender import WebhookSender
from smsgateway.webhooks.service import enqueue
from tests.factories import make_client

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
