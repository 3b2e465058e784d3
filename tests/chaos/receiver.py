"""A marketplace's webhook receiver for the chaos test: it fails some deliveries on purpose.

A bare HTTP/1.1 server on loopback (keep-alive, ``Content-Length`` bodies) that
answers ``500`` to a seeded share of the POSTs it gets and ``200`` to the rest,
and keeps every event it acknowledged: what a receiver that deduplicates on the
event's ``id`` would have.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from typing import Any


class FlakyReceiver:
    def __init__(self, failure_rate: float, seed: int, port: int) -> None:
        """``port``: chosen before the server starts, so that its URL can be given out first."""
        self.failure_rate = failure_rate
        self.rng = random.Random(seed)
        self.events: dict[str, dict[str, Any]] = {}  # acknowledged, by event id
        self.refused = 0
        self.port = port
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.decode("latin-1").split("\r\n")[1:]:
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value.strip())
                body = await reader.readexactly(length)
                status = self._take(body)
                writer.write(
                    f"HTTP/1.1 {status} {'OK' if status == 200 else 'Error'}\r\n"
                    "Content-Length: 0\r\n\r\n".encode()
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    def _take(self, body: bytes) -> int:
        if self.rng.random() < self.failure_rate:
            self.refused += 1
            return 500
        event = json.loads(body)
        self.events.setdefault(event["id"], event)
        return 200

    def status_events(self) -> dict[str, list[tuple[int, str]]]:
        """message id -> its acknowledged ``message.status`` events as (sequence, status)."""
        by_message: dict[str, list[tuple[int, str]]] = {}
        for event in self.events.values():
            if event["type"] != "message.status":
                continue
            data = event["data"]
            by_message.setdefault(data["message_id"], []).append((data["sequence"], data["status"]))
        return {mid: sorted(events) for mid, events in by_message.items()}
