"""Processes, databases and the load generator for the benchmark (loopback only).

Everything started here is stopped by ``Stack.close()``; every wrk run is bounded by
its duration (and, where given, a request limit).
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx
import psutil
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

ROOT = Path(__file__).resolve().parent.parent
WRK_DIR = Path(__file__).resolve().parent / "wrk"
KEYS = {
    "application_key": "bench-application-key",
    "application_secret": "bench-application-secret",
    "consumer_key": "bench-consumer-key",
}
SERVICE = "sms-bench-1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Process:
    """A child process (our interpreter) logging to a file; ``stop`` sends SIGTERM."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], logs: Path) -> None:
        self.name = name
        self.log_path = logs / f"{name}.log"
        self._log = self.log_path.open("ab")
        self.popen = subprocess.Popen(  # noqa: S603 - our interpreter, our modules
            [sys.executable, *args], env=env, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT
        )
        self.ps = psutil.Process(self.popen.pid)

    def tree(self) -> list[psutil.Process]:
        """The process and its children (uvicorn's workers)."""
        try:
            return [self.ps, *self.ps.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def rss_mb(self) -> list[float]:
        sizes = []
        for proc in self.tree():
            try:
                sizes.append(proc.memory_info().rss / 2**20)
            except psutil.NoSuchProcess:
                continue
        return sizes

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, timeout: float = 15.0) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                for proc in reversed(self.tree()):
                    proc.kill()
                self.popen.wait(5)
        self._log.close()


def wait_ok(url: str, process: Process, deadline_s: float = 60.0) -> None:
    deadline = time.monotonic() + deadline_s
    with httpx.Client(timeout=2) as http:
        while True:
            if process.popen.poll() is not None:
                raise RuntimeError(f"{process.name} exited:\n{process.log_tail()}")
            try:
                if http.get(url).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} not ready:\n{process.log_tail()}")
            time.sleep(0.2)


# -- the database -----------------------------------------------------------------------


async def _admin(server_url: str, statement: str) -> None:
    engine = create_async_engine(
        make_url(server_url).set(database="postgres"), isolation_level="AUTOCOMMIT"
    )
    try:
        async with engine.connect() as connection:
            await connection.execute(text(statement))
    finally:
        await engine.dispose()


def create_database(server_url: str) -> str:
    name = f"smsgw_bench_{secrets.token_hex(4)}"
    asyncio.run(_admin(server_url, f'CREATE DATABASE "{name}"'))
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def drop_database(url: str) -> None:
    name = make_url(url).database
    asyncio.run(_admin(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def query(url: str, statement: str, **params: Any) -> list[Any]:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as connection:
            result = await connection.execute(text(statement), params)
            return list(result.all()) if result.returns_rows else []
    finally:
        await engine.dispose()


def sql(url: str, statement: str, **params: Any) -> list[Any]:
    return asyncio.run(query(url, statement, **params))


# -- the load generator -----------------------------------------------------------------


@dataclass
class WrkResult:
    connections: int
    requests: int
    seconds: float
    non_2xx: int
    socket_errors: int
    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float

    @property
    def rps(self) -> float:
        return (self.requests - self.non_2xx) / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "rps": round(self.rps, 1)}


def wrk(
    url: str,
    script: str,
    *,
    connections: int,
    seconds: float,
    args: list[str] | None = None,
    timeout_s: float = 10.0,
) -> WrkResult:
    """One wrk run (one thread: it uses little CPU, which the server needs more)."""
    command = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds:g}s",
        f"--timeout={timeout_s:g}s",
        "-s",
        str(WRK_DIR / script),
        url,
    ]
    if args:
        command += ["--", *args]
    done = subprocess.run(  # noqa: S603 - wrk from Debian's packages
        command, capture_output=True, text=True, timeout=seconds + timeout_s + 30, check=False
    )
    return _parse(done.returncode, done.stdout, done.stderr, connections)


def wrk_requests(
    url: str, script: str, *, connections: int, count: int, args: list[str], max_seconds: float
) -> WrkResult:
    """wrk until ``count`` answers (the script's limit and marker arguments), then SIGINT."""
    with tempfile.TemporaryDirectory() as folder:
        marker = Path(folder) / "done"
        command = ["wrk", "-t1", f"-c{connections}", f"-d{max_seconds:g}s", "--timeout=10s"]
        command += ["-s", str(WRK_DIR / script), url, "--", *args, str(count), str(marker)]
        process = subprocess.Popen(  # noqa: S603
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        deadline = time.monotonic() + max_seconds + 5
        while process.poll() is None and not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        if process.poll() is None:
            process.send_signal(signal.SIGINT)  # wrk prints its summary and exits
        stdout, stderr = process.communicate(timeout=60)
    return _parse(0, stdout, stderr, connections)


def _parse(returncode: int, stdout: str, stderr: str, connections: int) -> WrkResult:
    line = next((ln for ln in stdout.splitlines() if ln.startswith("WRK_JSON ")), None)
    if returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed: {stdout}\n{stderr}")
    raw = json.loads(line.removeprefix("WRK_JSON "))
    return WrkResult(
        connections=connections,
        requests=raw["requests"],
        seconds=raw["duration_us"] / 1e6,
        non_2xx=raw["non_2xx"],
        socket_errors=raw["connect_errors"]
        + raw["read_errors"]
        + raw["write_errors"]
        + raw["timeouts"],
        p50_ms=raw["p50_us"] / 1000,
        p90_ms=raw["p90_us"] / 1000,
        p95_ms=raw["p95_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        max_ms=raw["max_us"] / 1000,
    )


# -- what the figures were measured on ----------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "-"


def _git(*args: str) -> str:
    try:
        done = subprocess.run(  # noqa: S603
            ["git", *args],  # noqa: S607 - git on PATH
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except OSError:
        return "-"
    return done.stdout.strip() or "-"


def _wrk_version() -> str:
    done = subprocess.run(
        ["wrk", "-v"],  # noqa: S607 - Debian's wrk on PATH
        capture_output=True,
        text=True,
        check=False,
    )
    return (done.stdout.splitlines() or ["wrk"])[0].split(" Copyright")[0].strip()


def machine(database_url: str) -> dict[str, Any]:
    [(pg_version,)] = sql(database_url, "SHOW server_version")
    [(max_connections,)] = sql(database_url, "SHOW max_connections")
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "postgresql": pg_version,
        "postgresql_max_connections": int(max_connections),
        "wrk": _wrk_version(),
        "packages": {
            name: _version(name)
            for name in ("uvicorn", "uvloop", "httptools", "fastapi", "sqlalchemy", "asyncpg")
        },
        "commit": _git("rev-parse", "--short", "HEAD"),
        "uncommitted_files": len(_git("status", "--porcelain").splitlines()),
        "load_before": os.getloadavg(),
    }


@dataclass
class Stack:
    """The processes of one benchmark run."""

    logs: Path
    env: dict[str, str]
    processes: dict[str, Process] = field(default_factory=dict)

    def start(self, name: str, args: list[str], env: dict[str, str] | None = None) -> Process:
        self.stop(name)
        process = Process(name, args, {**self.env, **(env or {})}, self.logs)
        self.processes[name] = process
        return process

    def stop(self, name: str) -> None:
        process = self.processes.pop(name, None)
        if process is not None:
            process.stop()

    def close(self) -> None:
        for name in list(self.processes):
            self.stop(name)
