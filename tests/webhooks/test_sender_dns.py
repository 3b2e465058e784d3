"""one tenant's webhook host slowing every other tenant's webhooks."""

from __future__ import annotations

import asyncio
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from smsgateway.runtime import Runtime
from smsgateway.webhooks import outbound
from smsgateway.webhooks.sender import WebhookSender
from tests.factories import make_client
from tests.webhooks.test_sender import Receiver, _enqueue


async def test_a_name_whose_dns_never_answers_does_not_hold_other_clients_lookups(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tenant's own name server that never answers (the resolver gives up after
    its own 5 s x attempts) holds a resolver thread per lookup long after the
    delivery's deadline cancelled the wait; every client shares those threads."""
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if str(host).startswith("slow"):
            time.sleep(3)  # a name server that does not answer
            raise socket.gaierror(socket.EAI_AGAIN, "timed out")
        if host == "good.example":
            host = "127.0.0.1"
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(outbound, "is_public", lambda address: True)  # stands for public
    runtime.settings.webhooks.allow_private_networks = False
    runtime.settings.webhooks.timeout_seconds = 1.0
    loop = asyncio.get_running_loop()
    executor = ThreadPoolExecutor(max_workers=6)  # the default on a 2-core host
    loop.set_default_executor(executor)
    async with Receiver("ok") as ok:
        port = ok.url.split(":")[2].split("/")[0]
        for n in range(2):
            slow = (await make_client(runtime, f"slow{n}", webhook_url=f"http://slow{n}.ex/h")).row
            await _enqueue(runtime, slow, 20)
        good = (
            await make_client(runtime, "good", webhook_url=f"http://good.example:{port}/hooks")
        ).row
        stop = asyncio.Event()
        async with httpx.AsyncClient() as http:
            sender = WebhookSender(runtime, http, worker_id="w")
            running = asyncio.create_task(sender.run(stop))
            await asyncio.sleep(1.5)  # the slow names' lookups pile up
            began = time.monotonic()
            [wanted] = await _enqueue(runtime, good, 1)
            for _ in range(80):
                if wanted in ok.events:
                    break
                await asyncio.sleep(0.05)
            waited = time.monotonic() - began
            stop.set()
            await running
    executor.shutdown(wait=False, cancel_futures=True)
    assert wanted in ok.events and waited < 2, f"another client's webhook waited {waited:.1f} s"
