"""Real processes for end-to-end, fault and chaos tests: the gateway's and the fake OVHcloud API.

Each process writes its output to a log file in the test's directory; ``stop`` ends it
(SIGTERM, then SIGKILL), ``kill`` ends it at once, as a crash would. Such tests run on
a database of their own (``tests.databases``): the suite's shared one is emptied after
every test.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

OVH_KEYS = {
    "application_key": "chaos-application-key",
    "application_secret": "chaos-application-secret",
    "consumer_key": "chaos-consumer-key",
}
SERVICE = "sms-chaos12345-1"
START_DEADLINE_S = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def gateway_env(database_url: str, **settings: str) -> dict[str, str]:
    """This environment without any SMSGW_ variable, plus the given settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMSGW_")}
    env["SMSGW_DATABASE_URL"] = database_url
    env.update({f"SMSGW_{name.upper()}": value for name, value in settings.items()})
    return env


def ovh_settings(endpoint: str, callback_token: str) -> dict[str, str]:
    """Gateway settings that send through the fake OVHcloud API at ``endpoint``."""
    return {
        "provider": "ovh",
        "ovh_endpoint": endpoint,
        "ovh_application_key": OVH_KEYS["application_key"],
        "ovh_application_secret": OVH_KEYS["application_secret"],
        "ovh_consumer_key": OVH_KEYS["consumer_key"],
        "ovh_service_name": SERVICE,
        "callback_token": callback_token,
    }


class Process:
    """A child process (our interpreter) whose output goes to ``<logs>/<name>.log``."""

    def __init__(
        self,
        name: str,
        args: list[str],
        env: dict[str, str],
        logs: Path,
        *,
        prefix: list[str] | None = None,
    ) -> None:
        """``prefix``: a command our interpreter runs under (``faketime -f +90s``)."""
        self.name = name
        self.args = args
        self.prefix = prefix or []
        self.env = env
        self.logs = logs
        self.log_path = logs / f"{name}.log"
        self.starts = 0
        self.popen = self._start()

    def _start(self) -> subprocess.Popen[bytes]:
        self.starts += 1
        with self.log_path.open("ab") as log:
            return subprocess.Popen(  # noqa: S603 - our own interpreter and modules
                [*self.prefix, sys.executable, *self.args],
                env=self.env,
                cwd=self.logs,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    @property
    def running(self) -> bool:
        return self.popen.poll() is None

    def restart(self) -> None:
        if self.running:
            self.kill()
        self.popen = self._start()

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to release anything."""
        if self.running:
            self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(10)

    def terminate(self, timeout: float) -> int:
        """SIGTERM and wait for the exit code (SIGKILL after ``timeout``)."""
        if self.running:
            self.popen.send_signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(10)
            raise

    def stop(self) -> None:
        if not self.running:
            return
        self.popen.terminate()
        try:
            self.popen.wait(5)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(5)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 40) -> str:
        return f"--- {self.name} log ---\n" + "\n".join(self.log_text().splitlines()[-lines:])


@contextmanager
def process_group(tail_lines: int = 60) -> Iterator[list[Process]]:
    """A list to append started processes to; each is stopped when the block ends.

    When the block fails, the tail of each one's log is printed (pytest shows it).
    """
    processes: list[Process] = []
    try:
        yield processes
    except BaseException:
        for process in processes:
            print(process.log_tail(tail_lines))
        raise
    finally:
        for process in processes:
            process.stop()


def run_command(args: list[str], env: dict[str, str], cwd: Path) -> str:
    """Run ``python <args>`` to its end; its stdout (fails the test on an error)."""
    done = subprocess.run(  # noqa: S603 - our own interpreter and modules
        [sys.executable, *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"{args} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def create_client(env: dict[str, str], cwd: Path, name: str, *extra: str) -> str:
    """A new API client (``smsgateway clients create``); its API key."""
    out = run_command(["-m", "smsgateway", "clients", "create", "--name", name, *extra], env, cwd)
    key: str = json.loads(out)["api_key"]
    return key


def start_fake_ovh(
    logs: Path, *, callback_urls: list[str], dlr_delay: float = 0.2, log_level: str = "warning"
) -> Process:
    """The fake OVHcloud API on a free port (read back from its log)."""
    args = ["-m", "smsgateway.testing.fake_ovh", "--port", "0", "--log-level", log_level]
    args += ["--service-name", SERVICE, "--dlr-delay", str(dlr_delay)]
    if callback_urls:
        args += ["--callback-url", ",".join(callback_urls)]
    for option, value in OVH_KEYS.items():
        args += ["--" + option.replace("_", "-"), value]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMSGW_")}
    return Process("fake_ovh", args, env, logs)


_BASE_URL = re.compile(r"^(http://\S+/1\.0)$", re.MULTILINE)


def fake_ovh_endpoint(fake: Process) -> str:
    """The base URL the fake printed once it was listening."""
    deadline = time.monotonic() + START_DEADLINE_S
    while True:
        found = _BASE_URL.search(fake.log_text())
        if found:
            return found.group(1)
        assert fake.running, f"the fake OVH API exited\n{fake.log_tail()}"
        assert time.monotonic() < deadline, f"the fake OVH API did not start\n{fake.log_tail()}"
        time.sleep(0.05)


def wait_until_ok(url: str, process: Process, deadline_s: float = START_DEADLINE_S) -> None:
    deadline = time.monotonic() + deadline_s
    with httpx.Client(timeout=5) as http:
        while True:
            assert process.running, f"{process.name} exited\n{process.log_tail()}"
            try:
                if http.get(url).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"{url} not ready\n{process.log_tail()}"
            time.sleep(0.1)
