"""``run_workers``: every background loop of a process outlives a bug in its pass."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from smsgateway.campaigns.worker import CampaignWorker
from smsgateway.cli import EXIT_STALLED
from smsgateway.messages.dispatcher import Dispatcher
from smsgateway.messages.report_checks import ReportChecker
from smsgateway.replies.poller import ReplyPoller
from smsgateway.runtime import Runtime
from smsgateway.webhooks.sender import WebhookSender
from smsgateway.worker import run_workers
from tests.processes import gateway_env

# The method each loop's pass calls, and the loop's name in the logs.
PASSES: list[tuple[type, str, str]] = [
    (Dispatcher, "_claim_into", "dispatcher"),
    (WebhookSender, "_claim", "webhook sender"),
    (ReportChecker, "check_once", "report checks"),
    (ReplyPoller, "poll_incoming", "incoming poller"),
    (ReplyPoller, "sync_blacklist", "blacklist sync"),
    (CampaignWorker, "run_once", "campaign worker"),
]


def _failing_once(calls: Counter[str], name: str, real: Callable[..., Any]) -> Any:
    async def patched(*args: Any, **kwargs: Any) -> Any:
        calls[name] += 1
        if calls[name] == 1:
            raise RuntimeError(f"a bug in the {name}")
        return await real(*args, **kwargs)

    return patched


async def test_every_loop_logs_a_bug_and_runs_again(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    calls: Counter[str] = Counter()
    for owner, method, name in PASSES:
        monkeypatch.setattr(owner, method, _failing_once(calls, name, getattr(owner, method)))
    # On, and often.
    runtime.settings.delivery_reports.check_interval_seconds = 0.05
    runtime.settings.replies.incoming_poll_seconds = 0.05
    runtime.settings.replies.blacklist_sync_seconds = 0.05
    caplog.set_level(logging.ERROR)
    stop = asyncio.Event()
    worker = asyncio.create_task(run_workers(runtime, stop))
    deadline = time.monotonic() + 10
    try:
        while any(calls[name] < 2 for *_, name in PASSES) and not worker.done():
            assert time.monotonic() < deadline, f"not every loop ran again: {calls}"
            await asyncio.sleep(0.02)
        assert not worker.done(), "a bug in one pass took the worker down"
    finally:
        stop.set()
        await asyncio.wait_for(worker, 10)
    logged = {r.getMessage().split(":")[0] for r in caplog.records if r.exc_info}
    assert logged >= {name for *_, name in PASSES}


def test_the_worker_command_exits_non_zero_when_its_loops_cannot_recover(
    tmp_path: Path,
) -> None:
    """Every pass fails (the database has no tables): the worker stops and says which loops."""
    env = gateway_env(
        f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}",
        loop_stall_seconds="1",
        worker_poll_seconds="0.1",
    )
    done = subprocess.run(
        [sys.executable, "-m", "smsgateway", "worker"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == EXIT_STALLED, done.stderr[-2000:]
    assert "no progress" in done.stderr and "dispatcher" in done.stderr
