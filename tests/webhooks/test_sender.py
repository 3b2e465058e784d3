"""Webhooks: written to the outbox, POSTed signed, retried until a 2xx."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta

import httpx
import respx
from sqlalchemy import select, update

from smsgateway.db import utcnow
from smsgateway.models.clients import ApiClient
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


class Receiver:
    """A loopback receiver: ``mode`` ``ok`` answers 200, ``silent`` never answers,
    ``drip`` sends its status line a byte at a time, ``endless`` an endless body."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.open = 0
        self.most_open = 0
        self.events: list[str] = []
        self.body_bytes_sent = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> Receiver:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/hooks"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open += 1
        self.most_open = max(self.most_open, self.open)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length")
            )
            self.events.append(json.loads(await reader.readexactly(length))["id"])
            if self.mode == "silent":
                await asyncio.sleep(3600)
            elif self.mode == "drip":
                for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n":
                    writer.write(bytes([byte]))
                    await writer.drain()
                    await asyncio.sleep(0.2)
            elif self.mode == "endless":
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 314572800\r\n\r\n")
                while True:
                    writer.write(b"x" * 65536)
                    await writer.drain()
                    self.body_bytes_sent += 65536
            else:
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.open -= 1
            writer.close()


async def _enqueue(runtime: Runtime, client: ApiClient, count: int) -> list[str]:
    async with runtime.sessionmaker() as session, session.begin():
        rows = [enqueue(session, client, "quota.low", {"n": n}) for n in range(count)]
    return [row.id for row in rows if row is not None]


async def test_a_receiver_that_never_answers_does_not_hold_another_clients_webhooks(
    runtime: Runtime,
) -> None:
    async with Receiver("silent") as silent, Receiver("ok") as ok:
        stuck = (await make_client(runtime, "stuck", webhook_url=silent.url)).row
        other = (await make_client(runtime, "other", webhook_url=ok.url)).row
        await _enqueue(runtime, stuck, 8)
        stop = asyncio.Event()
        async with httpx.AsyncClient() as http:
            sender = WebhookSender(runtime, http, worker_id="w")
            running = asyncio.create_task(sender.run(stop))
            await asyncio.sleep(0.3)  # the stuck client's deliveries are under way
            began = time.monotonic()
            [wanted] = await _enqueue(runtime, other, 1)
            for _ in range(180):
                if wanted in ok.events:
                    break
                await asyncio.sleep(0.05)
            waited = time.monotonic() - began
            stop.set()
            await running
    assert wanted in ok.events
    assert waited < 5, f"another client's webhook waited {waited:.1f} s"
    # The stuck client never had more than its slots on this worker.
    assert silent.most_open == runtime.settings.webhooks.per_client_concurrency


async def test_a_delivery_has_one_deadline_and_reads_no_body(runtime: Runtime) -> None:
    runtime.settings.webhooks.timeout_seconds = 1.0
    async with Receiver("drip") as drip, Receiver("endless") as endless:
        slow = (await make_client(runtime, "slow", webhook_url=drip.url)).row
        big = (await make_client(runtime, "big", webhook_url=endless.url)).row
        [dripped] = await _enqueue(runtime, slow, 1)
        [answered] = await _enqueue(runtime, big, 1)
        began = time.monotonic()
        async with httpx.AsyncClient() as http:
            await WebhookSender(runtime, http, worker_id="w").run_once()
        took = time.monotonic() - began
    cut, delivered = await _delivery(runtime, dripped), await _delivery(runtime, answered)
    assert (cut.status, cut.last_error) == ("pending", "timed out")
    assert took < 2.5  # the 1 s deadline, not 0.2 s per byte of the answer
    assert delivered.status == "delivered"
    assert endless.body_bytes_sent < 64 * 2**20  # what socket buffers hold, never 300 MiB


async def test_retries_follow_the_url_and_stop_when_it_is_removed_or_the_client_disabled(
    runtime: Runtime,
) -> None:
    async with Receiver("ok") as old, Receiver("ok") as new:
        client = (await make_client(runtime, "shop", webhook_url=old.url)).row
        moved, removed, disabled = await _enqueue(runtime, client, 3)
        async with runtime.sessionmaker() as session, session.begin():
            await session.execute(
                update(ApiClient).where(ApiClient.id == client.id).values(webhook_url=new.url)
            )
            await session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id.in_([removed, disabled]))
                .values(next_attempt_at=utcnow() + timedelta(hours=1))
            )
        async with httpx.AsyncClient() as http:
            sender = WebhookSender(runtime, http, worker_id="w")
            await sender.run_once()
            assert (old.events, new.events) == ([], [moved])
            assert (await _delivery(runtime, moved)).url == new.url

            async with runtime.sessionmaker() as session, session.begin():
                await session.execute(
                    update(ApiClient).where(ApiClient.id == client.id).values(webhook_url=None)
                )
                await session.execute(
                    update(WebhookDelivery)
                    .where(WebhookDelivery.id == removed)
                    .values(next_attempt_at=utcnow())
                )
            await sender.run_once()
            gone = await _delivery(runtime, removed)
            assert (gone.status, gone.last_error) == ("failed", "webhook URL removed")

            async with runtime.sessionmaker() as session, session.begin():
                await session.execute(
                    update(ApiClient)
                    .where(ApiClient.id == client.id)
                    .values(webhook_url=new.url, disabled_at=utcnow())
                )
                await session.execute(
                    update(WebhookDelivery)
                    .where(WebhookDelivery.id == disabled)
                    .values(next_attempt_at=utcnow())
                )
            await sender.run_once()
        ended = await _delivery(runtime, disabled)
        assert (ended.status, ended.last_error) == ("failed", "client disabled")
        assert new.events == [moved]


async def test_errors_shown_to_clients_carry_no_network_detail(runtime: Runtime) -> None:
    client = (await make_client(runtime, "shop", webhook_url=HOOK)).row
    [delivery] = await _enqueue(runtime, client, 1)
    with respx.mock() as receiver:
        receiver.post(HOOK).mock(side_effect=httpx.ConnectError("[Errno 111] refused 10.0.0.5"))
        async with httpx.AsyncClient() as http:
            await WebhookSender(runtime, http, worker_id="w").run_once()
    assert (await _delivery(runtime, delivery)).last_error == "no HTTP answer"
