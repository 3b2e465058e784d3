"""End to end with real processes on loopback: ``smsgateway serve`` and the fake OVH API.

The gateway sends through HTTP to the fake, which pushes the delivery report back to the
gateway's callback URL. The database is a SQLite file, or, when
``SMSGW_TEST_DATABASE_URL`` points at PostgreSQL, a database of its own on that server
(the suite's fixtures reset and empty the shared test database under other tests' feet).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

from smsgateway.messages.models import provider_tag_for

KEYS = {
    "application_key": "it-application-key",
    "application_secret": "it-application-secret",
    "consumer_key": "it-consumer-key",
}
SERVICE = "sms-it12345-1"
DEADLINE_S = 20.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def _admin(server_url: str, statement: str) -> None:
    url = make_url(server_url).set(database="postgres")
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.execute(text(statement))
    finally:
        await engine.dispose()


@contextmanager
def own_database(tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database URL; a PostgreSQL one is dropped afterwards."""
    shared = os.environ.get("SMSGW_TEST_DATABASE_URL")
    if not shared or not shared.startswith("postgresql"):
        yield f"sqlite+aiosqlite:///{tmp_path / 'it.db'}"
        return
    name = f"smsgw_it_{secrets.token_hex(6)}"
    asyncio.run(_admin(shared, f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(shared).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(_admin(shared, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


class Process:
    """A child process whose output goes to a log file, stopped on exit."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], logs: Path) -> None:
        self.name = name
        self.log_path = logs / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.popen = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, *args], env=env, cwd=logs, stdout=self._log, stderr=subprocess.STDOUT
        )

    def log_tail(self, lines: int = 40) -> str:
        text_lines = self.log_path.read_text(errors="replace").splitlines()
        return f"--- {self.name} log ---\n" + "\n".join(text_lines[-lines:])

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(5)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        self._log.close()


def wait_until_ok(http: httpx.Client, url: str, process: Process) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while True:
        assert process.popen.poll() is None, f"{process.name} exited\n{process.log_tail()}"
        try:
            if http.get(url).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"{url} not ready\n{process.log_tail()}"
        time.sleep(0.1)


def booking_requested(event_id: str) -> dict[str, Any]:
    """The DESIGN example."""
    return {
        "event_id": event_id,
        "type": "booking.requested",
        "booking": {
            "id": "b-42",
            "title": "Kayak for two",
            "starts_at": "2026-12-01T09:00:00+01:00",
            "expires_at": "2026-11-22T09:00:00+01:00",
        },
        "asker": {"user_ref": "u-1", "name": "Anna", "phone": "+33601020304", "language": "fr"},
        "offeror": {"user_ref": "u-2", "name": "Marc", "phone": "+33611223344", "language": "en"},
    }


def test_booking_event_is_sent_once_and_delivered(tmp_path: Path) -> None:
    api_port, fake_port = free_port(), free_port()
    api, fake = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{fake_port}"
    token = f"cb-{secrets.token_hex(8)}"
    with own_database(tmp_path) as database_url:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SMSGW_")}
        env.update(
            SMSGW_DATABASE_URL=database_url,
            SMSGW_PROVIDER="ovh",
            SMSGW_OVH_ENDPOINT=f"{fake}/1.0",
            SMSGW_OVH_APPLICATION_KEY=KEYS["application_key"],
            SMSGW_OVH_APPLICATION_SECRET=KEYS["application_secret"],
            SMSGW_OVH_CONSUMER_KEY=KEYS["consumer_key"],
            SMSGW_OVH_SERVICE_NAME=SERVICE,
            SMSGW_CALLBACK_TOKEN=token,
            SMSGW_REQUIRE_VERIFIED_PHONE="false",
            SMSGW_WORKER_POLL_SECONDS="0.2",
        )
        created = subprocess.run(
            [sys.executable, "-m", "smsgateway", "clients", "create", "--name", "it"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert created.returncode == 0, created.stderr
        api_key = json.loads(created.stdout)["api_key"]

        fake_args = ["-m", "smsgateway.testing.fake_ovh", "--port", str(fake_port)]
        fake_args += ["--service-name", SERVICE, "--dlr-delay", "0.2"]
        fake_args += ["--callback-url", f"{api}/v1/providers/ovh/{token}/dlr"]
        for option, value in KEYS.items():
            fake_args += ["--" + option.replace("_", "-"), value]
        serve_args = ["-m", "smsgateway", "serve", "--port", str(api_port)]
        processes: list[Process] = []
        try:
            processes.append(fake_ovh := Process("fake_ovh", fake_args, env, tmp_path))
            processes.append(gateway := Process("gateway", serve_args, env, tmp_path))
            with httpx.Client(timeout=5) as http:
                wait_until_ok(http, f"{fake}/1.0/auth/time", fake_ovh)
                wait_until_ok(http, f"{api}/readyz", gateway)
                run_scenario(http, api, fake, api_key)
        except BaseException:
            for process in processes:
                print(process.log_tail(80))  # shown by pytest when the test fails
            raise
        finally:
            for process in processes:
                process.stop()


def run_scenario(http: httpx.Client, api: str, fake: str, api_key: str) -> None:
    """Post the event, wait for delivery, replay it: one SMS reached the fake."""
    auth = {"Authorization": f"Bearer {api_key}"}
    event = booking_requested(f"evt-it-{secrets.token_hex(4)}")

    first = http.post(f"{api}/v1/booking-events", json=event, headers=auth)
    assert first.status_code == 202, first.text
    [entry] = first.json()["messages"]  # booking.requested: the offeror only
    assert entry["status"] == "queued"
    message_id = entry["id"]

    deadline = time.monotonic() + DEADLINE_S
    while True:
        message = http.get(f"{api}/v1/messages/{message_id}", headers=auth).json()
        if message["status"] == "delivered":
            break
        assert time.monotonic() < deadline, f"still {message}"
        time.sleep(0.1)

    sent = [s for s in http.get(f"{fake}/_control/sent").json() if s["message"] == message["text"]]
    assert len(sent) == 1, sent
    assert sent[0]["receiver"] == "+33611223344"
    assert sent[0]["noStopClause"] is True
    assert sent[0]["tag"] == provider_tag_for(message_id)
    assert str(sent[0]["id"]) == message["provider_id"]
    assert message["delivered_at"]

    again = http.post(f"{api}/v1/booking-events", json=event, headers=auth)
    assert again.status_code == 200, again.text  # a replay answers the first answer
    assert again.json() == first.json()
    time.sleep(1.0)  # several dispatcher polls
    stats = http.get(f"{fake}/_control/stats").json()
    assert stats["accepted"] == 1, stats
    assert stats["duplicates"] == 0
    assert stats["dlr_pushed"] >= 1
