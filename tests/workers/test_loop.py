"""The supervised loop: a failing pass is logged and retried, stop is graceful."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import replace

import pytest
from sqlalchemy.exc import OperationalError

from smsgateway.workers import loop as loop_module
from smsgateway.workers.loop import SupervisedLoop, error_backoff
from smsgateway.workers.retry import RetryPolicy


async def _until(check: Callable[[], object], what: str, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        await asyncio.sleep(0.005)


def _database_down() -> OperationalError:
    return OperationalError("SELECT 1", {}, ConnectionRefusedError("connection refused"))


async def test_an_exception_in_a_pass_is_logged_and_the_loop_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    passes = 0

    async def work() -> float:
        nonlocal passes
        passes += 1
        if passes == 1:
            raise RuntimeError("a bug")
        return 0.01

    loop = SupervisedLoop("test loop", work, backoff=error_backoff(0.01))
    stop = asyncio.Event()
    caplog.set_level(logging.WARNING)
    task = asyncio.create_task(loop.run(stop))
    await _until(lambda: passes >= 3 or task.done(), "the loop runs again after the bug")
    assert not task.done(), "the loop must outlive the exception"
    stop.set()
    await asyncio.wait_for(task, 1)

    [record] = [r for r in caplog.records if "test loop" in r.getMessage()]
    assert record.levelno == logging.ERROR
    assert "unexpected error" in record.getMessage()
    assert record.exc_info is not None and record.exc_info[0] is RuntimeError
    beat = loop.heartbeat
    assert beat.errors == 1 and beat.errors_in_a_row == 0
    assert beat.passes == passes - 1


async def test_a_transient_database_error_backs_off_per_the_strategy(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    outcomes: list[float | Exception] = [_database_down()] * 4 + [0.25, _database_down()]
    waits: list[float] = []
    stop = asyncio.Event()

    async def work() -> float:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    async def record_wait(
        stop_event: asyncio.Event, wakeup: asyncio.Event | None, *, seconds: float
    ) -> None:
        waits.append(seconds)
        await asyncio.sleep(0)  # a loop that ignored stop still lets the test time out
        if not outcomes:
            stop.set()

    monkeypatch.setattr(loop_module, "wait_for_any", record_wait)
    strategy = RetryPolicy(base_seconds=1, max_seconds=4, max_attempts=1)
    loop = SupervisedLoop("test loop", work, backoff=strategy)
    caplog.set_level(logging.WARNING)
    await asyncio.wait_for(loop.run(stop), 1)

    # Exponential with jitter (half fixed, half random), capped; reset by a good pass.
    bounds = [(0.5, 1), (1, 2), (2, 4), (2, 4)]
    for wait, (low, high) in zip(waits[:4], bounds, strict=True):
        assert low <= wait <= high
    assert waits[4] == 0.25  # what the good pass asked for
    assert 0.5 <= waits[5] <= 1
    warnings = [r for r in caplog.records if "database unavailable" in r.getMessage()]
    assert len(warnings) == 5
    assert all("test loop" in r.getMessage() and r.exc_info is None for r in warnings)
    assert loop.heartbeat.errors == 5 and loop.heartbeat.errors_in_a_row == 1


async def test_a_long_outage_never_overflows_the_backoff() -> None:
    async def work() -> float:
        raise _database_down()

    loop = SupervisedLoop("test loop", work, backoff=error_backoff(1.0))
    loop._heartbeat = replace(loop.heartbeat, errors_in_a_row=5000)
    assert 15 <= await loop.run_pass() <= 30


async def test_an_expected_error_is_a_warning_without_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def work() -> float:
        raise LookupError("provider said no")

    loop = SupervisedLoop("test loop", work, backoff=error_backoff(1.0), expected=(LookupError,))
    caplog.set_level(logging.WARNING)
    assert 0.5 <= await loop.run_pass() <= 1
    [record] = caplog.records
    assert record.levelno == logging.WARNING and record.exc_info is None
    assert "test loop" in record.getMessage() and "provider said no" in record.getMessage()


async def test_stop_lets_the_pass_under_way_finish_and_starts_no_other() -> None:
    stop = asyncio.Event()
    started: list[int] = []
    finished: list[int] = []

    async def work() -> float:
        started.append(len(started))
        await asyncio.sleep(0.1)  # a batch being sent
        finished.append(len(finished))
        return 0.0

    loop = SupervisedLoop("test loop", work, backoff=error_backoff(0.01))
    task = asyncio.create_task(loop.run(stop))
    await _until(lambda: started, "a pass is under way")
    stop.set()
    await asyncio.wait_for(task, 1)
    assert started == finished == [0]
    assert loop.heartbeat.passes == 1


async def test_stop_and_wakeup_cut_the_idle_wait_short() -> None:
    stop = asyncio.Event()
    wakeup = asyncio.Event()
    passes = 0

    async def work() -> float:
        nonlocal passes
        passes += 1
        return 3600.0  # only an event can end this wait

    loop = SupervisedLoop("test loop", work, backoff=error_backoff(0.01), wakeup=wakeup)
    task = asyncio.create_task(loop.run(stop))
    await _until(lambda: passes == 1, "the first pass ran")
    wakeup.set()
    await _until(lambda: passes == 2, "the wake-up started the next pass")
    assert not wakeup.is_set(), "cleared before each pass"
    stop.set()
    await asyncio.wait_for(task, 1)
    assert passes == 2


async def test_the_heartbeat_records_each_completed_pass() -> None:
    async def work() -> float:
        return 0.0

    loop = SupervisedLoop("test loop", work, backoff=error_backoff(0.01))
    assert loop.heartbeat.last_pass_at is None
    assert loop.heartbeat.seconds_since_pass() is None
    before = time.monotonic()
    await loop.run_pass()
    await loop.run_pass()
    beat = loop.heartbeat
    assert beat.passes == 2 and beat.errors == 0
    assert beat.last_pass_at is not None and before <= beat.last_pass_at <= time.monotonic()
    assert beat.seconds_since_pass(beat.last_pass_at + 2.5) == 2.5
