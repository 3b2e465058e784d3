"""A loop that makes no progress is never silent: /readyz names it, metrics show it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
import sqlalchemy.exc as sa_exc

from smsgateway.runtime import Runtime
from smsgateway.workers.loop import SupervisedLoop, error_backoff, stalled_loops
from tests.conftest import ADMIN_TOKEN

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

ALLOWANCE = 0.3


@pytest.fixture
def quick_stall(runtime: Runtime) -> Runtime:
    runtime.settings.worker.stall_seconds = ALLOWANCE
    return runtime


async def _running(
    name: str, work: Callable[[], Awaitable[float]]
) -> AsyncIterator[tuple[SupervisedLoop, asyncio.Event]]:
    stop = asyncio.Event()
    loop = SupervisedLoop(name, work, backoff=error_backoff(0.05))
    task = asyncio.create_task(loop.run(stop))
    try:
        yield loop, stop
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)


async def _pool_timeout() -> float:
    raise sa_exc.TimeoutError("QueuePool limit of size 10 overflow 10 reached")


async def test_a_loop_failing_every_pass_goes_on_and_is_named_stalled() -> None:
    async for loop, _stop in _running("dispatcher", _pool_timeout):
        await asyncio.sleep(ALLOWANCE / 2)
        assert stalled_loops(ALLOWANCE) == []  # failing, not yet for long
        await asyncio.sleep(ALLOWANCE)
        assert stalled_loops(ALLOWANCE) == ["dispatcher"]
        assert loop.heartbeat.errors >= 2  # it kept trying
    assert stalled_loops(ALLOWANCE) == []  # stopped: no longer running


async def test_a_loop_stuck_in_a_pass_is_stalled_until_it_comes_back() -> None:
    release = asyncio.Event()

    async def stuck() -> float:
        await release.wait()
        return 0.01

    async for _loop, _stop in _running("webhook sender", stuck):
        await asyncio.sleep(ALLOWANCE * 1.5)
        assert stalled_loops(ALLOWANCE) == ["webhook sender"]
        release.set()
        await asyncio.sleep(0.05)
        assert stalled_loops(ALLOWANCE) == []


async def test_a_healthy_loop_waiting_between_passes_is_not_stalled() -> None:
    async def idle() -> float:
        return ALLOWANCE * 3  # waits longer than the allowance between passes

    async for _loop, _stop in _running("report checks", idle):
        await asyncio.sleep(ALLOWANCE * 1.5)
        assert stalled_loops(ALLOWANCE) == []


async def test_readyz_answers_503_naming_a_stalled_loop(
    http: httpx.AsyncClient, quick_stall: Runtime
) -> None:
    async for _loop, _stop in _running("dispatcher", _pool_timeout):
        await asyncio.sleep(ALLOWANCE * 1.5)
        response = await http.get("/readyz")
        assert response.status_code == 503, response.text
        assert response.json()["stalled_loops"] == ["dispatcher"]
        metrics = (await http.get("/metrics", headers=ADMIN)).text
        assert 'smsgw_loop_stalled{loop="dispatcher"} 1.0' in metrics
        assert 'smsgw_loop_failures_total{loop="dispatcher"}' in metrics
        assert 'smsgw_loop_heartbeat_age_seconds{loop="dispatcher"}' in metrics
    response = await http.get("/readyz")
    assert response.status_code == 200, response.text
    assert response.json()["stalled_loops"] == []
