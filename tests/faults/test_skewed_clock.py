"""A gateway whose clock runs 90 s ahead keeps to the database's time.

The gateway (API and workers) runs under ``faketime``; the messages it sees
are judged by PostgreSQL's clock: a message another worker holds under a live
lease is not taken over, one due in a minute is not sent early, and one due
now goes. SQLite runs inside the process and has no clock of its own.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.databases import own_postgres_database, postgres_server_url
from tests.processes import (
    Process,
    create_client,
    fake_ovh_endpoint,
    free_port,
    gateway_env,
    ovh_settings,
    process_group,
    start_fake_ovh,
    wait_until_ok,
)

AHEAD = "+90s"
LEASE_S = 30
DEADLINE_S = 20.0


async def _sql(url: str, statement: str, **params: Any) -> list[Any]:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as connection:
            result = await connection.execute(text(statement), params)
            return list(result.all()) if result.returns_rows else []
    finally:
        await engine.dispose()


def _held_by_another_worker(url: str, message_id: str) -> None:
    """As if a worker with a good clock had just claimed it and were sending it."""
    asyncio.run(
        _sql(
            url,
            "UPDATE messages SET status = 'sending', lease_owner = 'worker-a',"
            " lease_until = now() + make_interval(secs => :lease), attempts = 1,"
            " due_at = now() WHERE id = :id",
            lease=LEASE_S,
            id=message_id,
        )
    )


def _state(url: str, message_id: str) -> tuple[str, str | None, int]:
    rows = asyncio.run(
        _sql(
            url, "SELECT status, lease_owner, attempts FROM messages WHERE id = :id", id=message_id
        )
    )
    status, owner, attempts = rows[0]
    return status, owner, attempts


@pytest.mark.skipif(postgres_server_url() is None, reason="SQLite has no clock of its own")
@pytest.mark.skipif(shutil.which("faketime") is None, reason="needs faketime (.ci/run installs it)")
def test_a_gateway_ahead_of_the_database_keeps_its_time(tmp_path: Path) -> None:
    server = postgres_server_url()
    assert server is not None
    api_port = free_port()
    api = f"http://127.0.0.1:{api_port}"
    token = f"cb-{secrets.token_hex(16)}"
    with own_postgres_database(server, "smsgw_clock") as url, process_group(80) as processes:
        processes.append(fake := start_fake_ovh(tmp_path, callback_urls=[]))
        endpoint = fake_ovh_endpoint(fake)
        env = gateway_env(
            url,
            **ovh_settings(endpoint, token),
            require_verified_phone="false",
            worker_poll_seconds="0.2",
            lease_seconds=str(LEASE_S),
        )
        auth = {"Authorization": f"Bearer {create_client(env, tmp_path, 'clock')}"}
        serve = ["-m", "smsgateway", "serve", "--port", str(api_port)]
        ahead = ["faketime", "-f", AHEAD]
        processes.append(gateway := Process("gateway", serve, env, tmp_path, prefix=ahead))
        wait_until_ok(f"{api}/readyz", gateway)
        with httpx.Client(timeout=5) as http:
            post = lambda **body: http.post(f"{api}/v1/messages", json=body, headers=auth)  # noqa: E731
            later = datetime.now(UTC) + timedelta(seconds=60)
            held = post(
                to="+33611223301", text="Held", send_at=(later + timedelta(days=1)).isoformat()
            )
            assert held.status_code == 202, held.text
            _held_by_another_worker(url, held.json()["id"])
            due_later = post(to="+33611223302", text="In a minute", send_at=later.isoformat())
            assert due_later.status_code == 202, due_later.text
            due_now = post(to="+33611223303", text="Now")
            assert due_now.status_code == 202, due_now.text

            deadline = time.monotonic() + DEADLINE_S
            while _state(url, due_now.json()["id"])[0] not in ("submitted", "delivered"):
                assert time.monotonic() < deadline, "the gateway sent nothing"
                time.sleep(0.2)
            time.sleep(2.0)  # a few more passes of its dispatcher

            sent = [
                s["message"]
                for s in http.get(f"{endpoint.removesuffix('/1.0')}/_control/sent").json()
            ]
        assert sent == ["Now"]
        assert _state(url, held.json()["id"]) == ("sending", "worker-a", 1)
        assert _state(url, due_later.json()["id"])[0] == "queued"
