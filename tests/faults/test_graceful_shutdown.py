"""SIGTERM in the middle of a batch: the process finishes or releases what it holds.

The fake OVHcloud API answers every call a second late, so a dispatcher holding a batch
has some messages in flight and some waiting their turn when it is told to stop. It
must exit 0 within a bound, and leave each message it held either submitted (the send
it had started finished and was stored) or queued again with its lease released, so
that the next dispatcher takes it at once rather than after the lease. Then a fresh
dispatcher sends the rest: every message reaches OVHcloud exactly once.

``smsgateway worker`` and ``smsgateway serve`` (API plus dispatcher) are both stopped
this way; ``serve --no-worker`` too.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.chaos.summary import record_summary
from tests.databases import own_database
from tests.processes import (
    Process,
    create_client,
    fake_ovh_endpoint,
    free_port,
    gateway_env,
    ovh_settings,
    process_group,
    run_command,
    start_fake_ovh,
    wait_until_ok,
)

MESSAGES = 12
EXIT_BOUND_S = 10.0
DEADLINE_S = 30.0
SETTINGS = {
    "require_verified_phone": "false",
    "worker_batch_size": "6",
    "worker_concurrency": "2",
    "worker_poll_seconds": "0.2",
    "lease_seconds": "120",  # a lease left behind would hold its message for minutes
    "ovh_timeout_seconds": "5",
    "incoming_poll_seconds": "0",
    "blacklist_sync_seconds": "0",
    "provider_calls_per_minute": "0",
    "dlr_check_interval_seconds": "0",
}


def rows(database_url: str) -> list[dict[str, Any]]:
    async def read() -> list[dict[str, Any]]:
        engine = create_async_engine(database_url)
        try:
            async with engine.connect() as connection:
                result = await connection.execute(
                    text(
                        "SELECT id, status, lease_owner, lease_until, provider_id, provider_tag "
                        "FROM messages"
                    )
                )
                return [dict(row._mapping) for row in result]
        finally:
            await engine.dispose()

    return asyncio.run(read())


def until(check: Any, what: str, process: Process | None = None) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not check():
        if process is not None:
            assert process.running, f"{process.name} exited\n{process.log_tail()}"
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.1)


def assert_nothing_held(messages: list[dict[str, Any]]) -> Counter[str]:
    """Each message is submitted, or queued with no lease: none is left 'sending'."""
    for message in messages:
        assert message["status"] in {"queued", "submitted"}, message
        if message["status"] == "queued":
            assert message["lease_owner"] is None and message["lease_until"] is None, message
    return Counter(m["status"] for m in messages)


def stop_in_the_middle(process: Process, fake: str, database_url: str) -> tuple[int, float]:
    """Wait until ``process`` is sending, SIGTERM it; its exit code and how long it took."""
    before = httpx.get(f"{fake}/_control/stats").json()["job_calls"]
    until(
        lambda: httpx.get(f"{fake}/_control/stats").json()["job_calls"] > before,
        f"{process.name} is sending",
        process,
    )
    assert any(m["status"] == "sending" for m in rows(database_url)), "mid-batch"
    started = time.monotonic()
    code = process.terminate(timeout=EXIT_BOUND_S)
    return code, time.monotonic() - started


def test_sigterm_finishes_or_releases_what_it_holds(tmp_path: Path) -> None:
    with process_group() as processes:
        processes.append(fake := start_fake_ovh(tmp_path, callback_urls=[]))
        endpoint = fake_ovh_endpoint(fake)
        fake_url = endpoint.removesuffix("/1.0")
        with own_database(tmp_path, "smsgw_shutdown") as database_url:
            env = gateway_env(
                database_url, **ovh_settings(endpoint, secrets.token_hex(16)), **SETTINGS
            )
            run_command(["-m", "smsgateway", "migrate"], env, tmp_path)
            key = create_client(env, tmp_path, "shutdown")
            port = free_port()
            api_args = ["-m", "smsgateway", "serve", "--no-worker", "--port", str(port)]
            api = Process("api", api_args, env, tmp_path)
            processes.append(api)
            wait_until_ok(f"http://127.0.0.1:{port}/readyz", api)
            for n in range(MESSAGES):
                response = httpx.post(
                    f"http://127.0.0.1:{port}/v1/messages",
                    json={"to": f"+336120000{n:02d}", "text": f"Shutdown test {n}"},
                    headers={"Authorization": f"Bearer {key}"},
                )
                assert response.status_code == 202, response.text
            httpx.post(f"{fake_url}/_control/faults", json={"latency_ms": 1000}).raise_for_status()

            # A worker, stopped in the middle of its batch.
            worker = Process("worker", ["-m", "smsgateway", "worker"], env, tmp_path)
            processes.append(worker)
            worker_exit = stop_in_the_middle(worker, fake_url, database_url)
            after_worker = assert_nothing_held(rows(database_url))

            # serve with its dispatcher, stopped the same way.
            serve_port = free_port()
            serve_args = ["-m", "smsgateway", "serve", "--port", str(serve_port)]
            serve = Process("serve", serve_args, env, tmp_path)
            processes.append(serve)
            serve_exit = stop_in_the_middle(serve, fake_url, database_url)
            after_serve = assert_nothing_held(rows(database_url))

            # A fresh worker sends the rest at once (no lease to wait for), then stops idle.
            httpx.post(f"{fake_url}/_control/faults", json={}).raise_for_status()
            last = Process("worker-2", ["-m", "smsgateway", "worker"], env, tmp_path)
            processes.append(last)
            until(
                lambda: all(m["status"] == "submitted" for m in rows(database_url)),
                "every message is submitted",
                last,
            )
            last_exit = last.terminate(timeout=EXIT_BOUND_S)
            api_exit = api.terminate(timeout=EXIT_BOUND_S)

            final = rows(database_url)
            sent = httpx.get(f"{fake_url}/_control/sent").json()
            stats = httpx.get(f"{fake_url}/_control/stats").json()

    assert worker_exit[0] == 0 and worker_exit[1] < EXIT_BOUND_S, (worker_exit, worker.log_tail())
    assert serve_exit[0] == 0 and serve_exit[1] < EXIT_BOUND_S, (serve_exit, serve.log_tail())
    assert last_exit == 0, last.log_tail()
    assert api_exit == 0, api.log_tail()
    assert after_worker["submitted"] >= 1, "the sends under way were finished and stored"
    assert after_serve["submitted"] > after_worker["submitted"]
    per_tag = Counter(sms["tag"] for sms in sent)
    assert stats["duplicates"] == 0 and set(per_tag.values()) == {1}, per_tag
    assert {m["provider_tag"] for m in final} == set(per_tag), "each message went, once"
    assert {m["provider_id"] for m in final} == {str(sms["id"]) for sms in sent}
    record_summary(
        f"sigterm: messages={MESSAGES} worker_exit={worker_exit[0]} in {worker_exit[1]:.1f}s "
        f"(held: {dict(after_worker)}) serve_exit={serve_exit[0]} in {serve_exit[1]:.1f}s "
        f"(held: {dict(after_serve)}) sent={len(sent)} duplicates={stats['duplicates']} "
        f"lost={MESSAGES - len(per_tag)}"
    )
