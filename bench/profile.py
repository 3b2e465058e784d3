"""Where an ingest request's time goes: SQL statements per request, and a py-spy profile.

    python -m bench.profile statements   # the SQL one booking event sends (in process)
    python -m bench.profile pyspy        # samples the API process under wrk load

Both use a database of their own on ``--server-url`` (dropped at the end). ``pyspy``
needs py-spy (``pip install py-spy``) and wrk.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import create_async_engine

from bench.harness import (
    ROOT,
    Stack,
    create_database,
    drop_database,
    free_port,
    wait_ok,
    wrk,
)
from bench.report import booking_event


async def _statements(database_url: str, count: int) -> dict[str, Any]:
    from smsgateway.app import create_app
    from smsgateway.clients.service import create_client
    from smsgateway.config import (
        DatabaseSettings,
        LogSettings,
        Settings,
        VerificationSettings,
    )
    from smsgateway.providers.fake import FakeProvider
    from smsgateway.runtime import build_runtime

    settings = Settings(
        database=DatabaseSettings(url=database_url),
        verification=VerificationSettings(required=False),
        log=LogSettings(access_log=False),
    )
    runtime = build_runtime(settings, provider=FakeProvider())
    seen: list[str] = []
    checkouts = [0]

    def on_execute(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(" ".join(statement.split())[:110])

    event.listen(runtime.engine.sync_engine, "before_cursor_execute", on_execute)
    event.listen(
        runtime.engine.sync_engine.pool,
        "checkout",
        lambda *_: checkouts.__setitem__(0, checkouts[0] + 1),
    )
    async with runtime.sessionmaker() as session, session.begin():
        key = (await create_client(session, name="profile", quota=None)).api_key
    app = create_app(runtime=runtime)
    per_request: list[list[str]] = []
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://p") as http:
            for index in range(count):
                seen.clear()
                checkouts[0] = 0
                response = await http.post(
                    "/v1/booking-events",
                    json=booking_event(f"profile-{index}", index),
                    headers={"Authorization": f"Bearer {key}"},
                )
                assert response.status_code == 202, response.text
                per_request.append(list(seen))
    await runtime.aclose()
    last = per_request[-1]
    return {"statements": len(last), "checkouts": checkouts[0], "sql": last}


async def _dispatch_statements(database_url: str, count: int) -> dict[str, Any]:
    """Statements and checkouts of one dispatcher pass over ``count`` due messages."""
    from smsgateway.app import create_app
    from smsgateway.clients.service import create_client
    from smsgateway.config import (
        DatabaseSettings,
        LogSettings,
        ProviderSettings,
        Settings,
        VerificationSettings,
    )
    from smsgateway.messages.dispatcher import Dispatcher
    from smsgateway.providers.fake import FakeProvider
    from smsgateway.runtime import build_runtime

    settings = Settings(
        database=DatabaseSettings(url=database_url),
        verification=VerificationSettings(required=False),
        log=LogSettings(access_log=False),
        provider=ProviderSettings(calls_per_minute=0),
    )
    runtime = build_runtime(settings, provider=FakeProvider())
    async with runtime.sessionmaker() as session, session.begin():
        key = (await create_client(session, name="dispatch", quota=None)).api_key
    app = create_app(runtime=runtime)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://p") as http:
            for index in range(count):
                await http.post(
                    "/v1/booking-events",
                    json=booking_event(f"dispatch-{index}", index),
                    headers={"Authorization": f"Bearer {key}"},
                )
    seen: list[str] = []
    checkouts = [0]

    def on_execute(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(" ".join(statement.split()))

    event.listen(runtime.engine.sync_engine, "before_cursor_execute", on_execute)
    event.listen(
        runtime.engine.sync_engine.pool,
        "checkout",
        lambda *_: checkouts.__setitem__(0, checkouts[0] + 1),
    )
    sent = await Dispatcher(runtime, worker_id="profile").run_once()
    await runtime.aclose()
    kinds = collections.Counter(f"{s.split(' ')[0]} {_table(s)}" for s in seen)
    return {"messages": sent, "statements": len(seen), "checkouts": checkouts[0], "kinds": kinds}


def _table(statement: str) -> str:
    words = statement.replace("(", " ").split()
    for marker in ("FROM", "INTO", "UPDATE"):
        if marker in words[:-1]:
            return words[words.index(marker) + 1]
    return words[1] if len(words) > 1 else ""


def statements(args: argparse.Namespace) -> None:
    url = create_database(args.server_url)
    try:
        from smsgateway.migrate import upgrade

        upgrade(url)
        result = asyncio.run(_statements(url, 5))
        dispatch = asyncio.run(_dispatch_statements(url, 20))
    finally:
        drop_database(url)
    print(
        f"{result['statements']} SQL statements (round trips) and {result['checkouts']} "
        "pool checkouts for one booking event:"
    )
    for index, statement in enumerate(result["sql"], 1):
        print(f"{index:3}. {statement}")
    n = max(1, dispatch["messages"])
    print(
        f"\ndispatcher pass over {dispatch['messages']} messages: {dispatch['statements']} "
        f"statements ({dispatch['statements'] / n:.1f} a message), {dispatch['checkouts']} "
        f"checkouts ({dispatch['checkouts'] / n:.1f} a message):"
    )
    for kind, found in dispatch["kinds"].most_common():
        print(f"  {found / n:5.2f} a message  {kind}")


def pyspy(args: argparse.Namespace) -> None:
    url = create_database(args.server_url)
    logs = Path(tempfile.mkdtemp(prefix="smsgw-profile-"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMSGW_")}
    env.update(
        SMSGW_DATABASE_URL=url,
        SMSGW_REQUIRE_VERIFIED_PHONE="false",
        SMSGW_LOG_FORMAT="json",
        SMSGW_LOG_LEVEL=args.log_level,
    )
    stack = Stack(logs=logs, env=env)
    try:
        subprocess.run(
            [sys.executable, "-m", "smsgateway", "migrate"],
            env=env,
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        created = subprocess.run(
            [
                sys.executable,
                "-m",
                "smsgateway",
                "clients",
                "create",
                "--name",
                "p",
                "--quota",
                "1e9",
            ],
            env=env,
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        )
        key = json.loads(created.stdout)["api_key"]
        api = stack.start("api", ["-m", "smsgateway", "serve", "--no-worker", "--port", str(port)])
        wait_ok(f"http://127.0.0.1:{port}/readyz", api)
        wrk(
            f"http://127.0.0.1:{port}/",
            "booking_events.lua",
            connections=8,
            seconds=3,
            args=[key, "warm"],
        )
        raw = logs / "pyspy.txt"
        spy = subprocess.Popen(  # noqa: S603
            [
                shutil.which("py-spy") or "py-spy",
                "record",
                "-r",
                "250",
                "-d",
                str(args.seconds),
                "-f",
                "raw",
                "-o",
                str(raw),
                "--pid",
                str(api.popen.pid),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(1)
        result = wrk(
            f"http://127.0.0.1:{port}/",
            "booking_events.lua",
            connections=args.connections,
            seconds=args.seconds - 2,
            args=[key, "spy"],
        )
        spy.wait(args.seconds + 30)
        print(f"{result.rps:.0f} req/s at c={args.connections} (1 API process, py-spy attached)")
        summarise(raw, args.top)
    finally:
        stack.close()
        drop_database(url)


def _watch_locks(url: str, done: threading.Event, waiting: list[int]) -> None:
    """Every 250 ms: how many sessions of the database wait on a lock (one connection)."""

    async def watch() -> None:
        engine = create_async_engine(url, pool_size=1, max_overflow=0)
        try:
            async with engine.connect() as connection:
                while not done.is_set():
                    count = await connection.scalar(
                        text(
                            "SELECT count(*) FROM pg_stat_activity"
                            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                        )
                    )
                    waiting.append(int(count or 0))
                    await connection.commit()  # a fresh snapshot of pg_stat_activity
                    await asyncio.sleep(0.25)
        finally:
            await engine.dispose()

    asyncio.run(watch())


def contention(args: argparse.Namespace) -> None:
    """Ingest for a client with a quota and one without, and who waits on row locks.

    A client with a quota has its balance row updated (and locked until commit) by every
    event it posts; an unlimited one has no row to lock.
    """
    url = create_database(args.server_url)
    logs = Path(tempfile.mkdtemp(prefix="smsgw-contention-"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMSGW_")}
    env.update(
        SMSGW_DATABASE_URL=url,
        SMSGW_REQUIRE_VERIFIED_PHONE="false",
        SMSGW_LOG_FORMAT="json",
        SMSGW_LOG_LEVEL=args.log_level,
    )
    stack = Stack(logs=logs, env=env)
    try:
        subprocess.run(
            [sys.executable, "-m", "smsgateway", "migrate"],
            env=env,
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        keys = {}
        for name, quota in (("with-quota", ["--quota", "1e9"]), ("unlimited", [])):
            created = subprocess.run(  # noqa: S603
                [sys.executable, "-m", "smsgateway", "clients", "create", "--name", name, *quota],
                env=env,
                cwd=ROOT,
                check=True,
                capture_output=True,
                text=True,
            )
            keys[name] = json.loads(created.stdout)["api_key"]
        command = ["-m", "smsgateway", "serve", "--no-worker", "--port", str(port)]
        api = stack.start("api", [*command, "--workers", str(args.workers)])
        base = f"http://127.0.0.1:{port}"
        wait_ok(f"{base}/readyz", api)
        for repetition in range(args.repeat):
            for name, key in keys.items():
                waiting: list[int] = []
                done = threading.Event()
                watcher = threading.Thread(
                    target=_watch_locks, args=(url, done, waiting), daemon=True
                )
                watcher.start()
                result = wrk(
                    f"{base}/",
                    "booking_events.lua",
                    connections=args.connections,
                    seconds=args.seconds,
                    args=[key, secrets.token_hex(6)],
                )
                done.set()
                watcher.join()
                mean = sum(waiting) / max(1, len(waiting))
                print(
                    f"run {repetition + 1} {name:>10}: {result.rps:6.0f} req/s, "
                    f"p50 {result.p50_ms:7.1f} ms, p99 {result.p99_ms:7.1f} ms, "
                    f"sessions waiting on a lock: mean {mean:.1f}, max {max(waiting, default=0)}",
                    flush=True,
                )
    finally:
        stack.close()
        drop_database(url)


def summarise(raw: Path, top: int) -> None:
    """Inclusive share of samples per function (ours and the libraries')."""
    inclusive: collections.Counter[str] = collections.Counter()
    leaf: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        count = int(count_text)
        frames = stack.split(";")
        total += count
        names = []
        for frame in frames:
            name = frame.split(" (")[0]
            where = frame.split(" (")[1].rstrip(")") if " (" in frame else ""
            module = where.split("site-packages/")[-1].split("smsgateway/src/")[-1]
            names.append(f"{name} [{module.rsplit(':', 1)[0]}]")
        for name in set(names):
            inclusive[name] += count
        leaf[names[-1]] += count
    # uvloop's loop runs in C: its idle time shows as the leaf ``Runner.run``.
    idle = sum(c for n, c in leaf.items() if n.startswith(("Runner.run ", "Condition.wait ")))
    print(f"{total} samples; idle (event loop waiting, idle threads) {idle / total:.0%}")
    print("\ninclusive (share of all samples):")
    for name, count in inclusive.most_common(top):
        print(f"  {count / total:6.1%}  {name}")
    print("\nself (leaf frames):")
    for name, count in leaf.most_common(top // 2):
        print(f"  {count / total:6.1%}  {name}")


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile")
    parser.add_argument("what", choices=["statements", "pyspy", "contention"])
    parser.add_argument("--server-url", default="postgresql+asyncpg://postgres@127.0.0.1/postgres")
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--top", type=int, default=60)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    {"statements": statements, "pyspy": pyspy, "contention": contention}[args.what](args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
