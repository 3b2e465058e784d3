"""Webhooks: written to the outbox, POSTed signed, retried until a 2xx."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import respx
from sqlalchemy import select

from smsgateway.db import utcnow
from smsgateway.models.webhooks import WebhookDelivery
from smsgateway.runtime import Runtime
from smsgateway.webhooks.sender import WebhookSender
from smsgateway.webhooks.service import enqueue
from smsgateway.webhooks.signing import SIGNATURE_HEADER, signature_header, verify
from tests.factories import make_client

HOOK = "https://marketplace.test/hooks/sms"


async def _delivery(runtime: Runtime, delivery_id: str) -> WebhookDelivery:
    async with runtime.sessionmaker() as session:
        found = await session.get(WebhookDelivery, delivery_id)
    assert found is not None
    return found


async def test_receiver_failing_twice_gets_the_event_once_acknowledged(runtime: Runtime) -> None:
    client = (await make_client(runtime, quota=10, webhook_url=HOOK)).row
    async with runtime.sessionmaker() as session, session.begin():
        delivery = enqueue(session, client, "phone.verified", {"user_ref": "u-1"})
    assert delivery is not None
    with respx.mock(assert_all_called=True) as receiver:
        route = receiver.post(HOOK).mock(
            side_effect=[httpx.Response(500), httpx.ConnectError("refused"), httpx.Response(204)]
        )
        async with httpx.AsyncClient() as http:
            sender = WebhookSender(runtime, http, worker_id="w")
            sender.retry = type(sender.retry)(
                base_seconds=0.001, max_seconds=0.002, max_attempts=10
            )
            for _ in range(20):
                await sender.run_once()
                if (await _delivery(runtime, delivery.id)).status == "delivered":
                    break
                await asyncio.sleep(0.005)
    stored = await _delivery(runtime, delivery.id)
    assert stored.status == "delivered"
    assert stored.attempts == 3
    assert route.call_count == 3
    last = route.calls[-1].request
    body = json.loads(last.content)
    assert body["id"] == delivery.id
    assert body["type"] == "phone.verified"
    assert body["data"] == {"user_ref": "u-1"}
    assert last.headers["Smsgw-Event-Id"] == delivery.id
    assert verify(
        client.webhook_secret or "",
        last.headers[SIGNATURE_HEADER],
        last.content,
        now=int(time.time()),
    )
    assert not verify(
        "another-secret", last.headers[SIGNATURE_HEADER], last.content, now=int(time.time())
    )
    # Acknowledged: nothing more is sent.
    with respx.mock(assert_all_called=False) as receiver:
        again = receiver.post(HOOK).respond(200)
        async with httpx.AsyncClient() as http:
            await WebhookSender(runtime, http, worker_id="w").run_once()
        assert again.call_count == 0


async def test_gives_up_after_max_attempts(runtime: Runtime) -> None:
    client = (await make_client(runtime, quota=10, webhook_url=HOOK)).row
    async with runtime.sessionmaker() as session, session.begin():
        delivery = enqueue(session, client, "quota.low", {"credits_left": 1.0})
    assert delivery is not None
    with respx.mock() as receiver:
        receiver.post(HOOK).respond(410)
        async with httpx.AsyncClient() as http:
            sender = WebhookSender(runtime, http, worker_id="w")
            sender.retry = type(sender.retry)(base_seconds=0.001, max_seconds=0.001, max_attempts=2)
            for _ in range(10):
                await sender.run_once()
                await asyncio.sleep(0.003)
    stored = await _delivery(runtime, delivery.id)
    assert (stored.status, stored.attempts, stored.last_status_code) == ("failed", 2, 410)


async def test_no_webhook_url_means_no_outbox_row(runtime: Runtime) -> None:
    quiet = await make_client(runtime, "quiet")
    async with runtime.sessionmaker() as session, session.begin():
        assert enqueue(session, quiet.row, "quota.low", {}) is None
    async with runtime.sessionmaker() as session:
        assert (await session.scalars(select(WebhookDelivery))).all() == []


def test_signature_rejects_tampering_and_stale_timestamps() -> None:
    body = b'{"id":"x"}'
    now = int(time.time())
    header = signature_header("s3cret", now, body)
    assert verify("s3cret", header, body, now=now)
    assert not verify("s3cret", header, b'{"id":"y"}', now=now)
    assert not verify("s3cret", header, body, now=now + 3600)
    assert not verify("s3cret", "garbage", body, now=now)
    assert utcnow().tzinfo is not None
