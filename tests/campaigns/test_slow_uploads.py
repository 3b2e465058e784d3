"""Slow uploads hold no database connection, and a stalled body gets a 408.

The app is served by uvicorn on loopback, so uploads can really trickle in:
one client trickles 8 campaign uploads while another's requests must all
succeed within 5 s, and no pooled connection may be held by the uploads.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import httpx
import pytest
import uvicorn

from smsgateway.app import create_app
from smsgateway.runtime import Runtime
from tests.factories import make_client

BOUNDARY = "trickle-boundary"


@contextlib.asynccontextmanager
async def serving(runtime: Runtime) -> AsyncIterator[int]:
    app = create_app(runtime=runtime)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=0,
            log_level="warning",
            lifespan="on",
            timeout_graceful_shutdown=1,
        )
    )
    task = asyncio.create_task(server.serve())
    for _ in range(250):
        if server.started:
            break
        await asyncio.sleep(0.02)
    try:
        yield server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        await task


async def _trickle(port: int, api_key: str, seconds: float, every: float = 0.25) -> bytes:
    """A campaign upload whose body comes a few bytes at a time; the answer, if any."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (
        f"POST /v1/campaigns HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {api_key}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
        "Content-Length: 100000\r\n\r\n"
    )
    writer.write(head.encode())
    writer.write(f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="name"\r\n\r\nx'.encode())
    await writer.drain()
    end = time.monotonic() + seconds
    try:
        while time.monotonic() < end and not reader.at_eof():
            await asyncio.sleep(every)
            if reader._buffer:  # the server answered already
                break
            writer.write(b"x")
            await writer.drain()
    except ConnectionError:
        pass
    try:
        return await asyncio.wait_for(reader.read(4096), timeout=5)
    except (ConnectionError, TimeoutError):
        return b""
    finally:
        writer.close()


async def test_trickled_uploads_hold_no_connection_and_starve_no_one(runtime: Runtime) -> None:
    runtime.settings.api.body_read_timeout_seconds = 30
    slow = await make_client(runtime, "slow")
    other = await make_client(runtime, "other")
    async with serving(runtime) as port:
        uploads = [asyncio.create_task(_trickle(port, slow.api_key, 3.0)) for _ in range(8)]
        await asyncio.sleep(0.5)  # every upload is in, trickling
        held = runtime.engine.pool.checkedout()
        took: list[float] = []
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            for _ in range(10):
                began = time.monotonic()
                answer = await http.get("/v1/account", headers=other.auth)
                took.append(time.monotonic() - began)
                assert answer.status_code == 200, answer.text
        for upload in uploads:
            upload.cancel()
        await asyncio.gather(*uploads, return_exceptions=True)
    assert held == 0, f"{held} connections held by trickling uploads"
    assert max(took) < 5, took


async def test_a_stalled_body_gets_a_408(runtime: Runtime) -> None:
    runtime.settings.api.body_read_timeout_seconds = 0.5
    slow = await make_client(runtime, "slow")
    async with serving(runtime) as port:
        answer = await _trickle(port, slow.api_key, seconds=2.0, every=1.0)
    status_line = answer.split(b"\r\n", 1)[0]
    assert status_line.startswith(b"HTTP/1.1 408"), answer[:300]
    assert b"request-timeout" in answer


@pytest.mark.parametrize("path", ["/v1/booking-events", "/v1/messages"])
async def test_json_bodies_time_out_too(runtime: Runtime, path: str) -> None:
    runtime.settings.api.body_read_timeout_seconds = 0.5
    shop = await make_client(runtime, "shop")
    async with serving(runtime) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            f"POST {path} HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {shop.api_key}\r\n"
            "Content-Type: application/json\r\nContent-Length: 500\r\n\r\n{".encode()
        )
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(4096), timeout=5)
        writer.close()
    assert answer.startswith(b"HTTP/1.1 408"), answer[:300]
