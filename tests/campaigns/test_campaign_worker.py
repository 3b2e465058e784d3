"""The campaign worker: leases, resuming after a crash, and its background loop."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from smsgateway.campaigns.service import cancel_campaign
from smsgateway.campaigns.worker import CampaignWorker
from smsgateway.credits.ledger import ledger_sum
from smsgateway.models.campaigns import Campaign
from smsgateway.models.clients import ApiClient
from smsgateway.models.messages import Message
from smsgateway.runtime import Runtime
from tests.factories import make_client

ROWS = 7
CSV = "number;name\n" + "".join(f"+3361000000{n};N{n}\n" for n in range(ROWS))


@pytest.fixture
def runtime(runtime: Runtime) -> Runtime:
    runtime.settings = runtime.settings.model_copy(
        update={
            "campaigns": runtime.settings.campaigns.model_copy(update={"batch_size": 2}),
            "marketing": runtime.settings.marketing.model_copy(update={"hours_enabled": False}),
        }
    )
    return runtime


async def _accept(http: httpx.AsyncClient, runtime: Runtime) -> tuple[str, str]:
    shop = await make_client(runtime, quota=100)
    response = await http.post(
        "/v1/campaigns",
        json={"name": "Batches", "text": "Hi #NAME#", "csv": CSV},
        headers=shop.auth,
    )
    assert response.status_code == 202, response.text
    return shop.id, response.json()["id"]


def _before_second_batch(
    monkeypatch: pytest.MonkeyPatch, action: Callable[[CampaignWorker], Awaitable[None]]
) -> None:
    """Run ``action`` just before the worker's second batch (a crash, a cancel)."""
    real = CampaignWorker._create_batch
    calls = 0

    async def batch(self: CampaignWorker, *args: Any) -> bool:
        nonlocal calls
        calls += 1
        if calls == 2:
            await action(self)
        return await real(self, *args)

    monkeypatch.setattr(CampaignWorker, "_create_batch", batch)


async def _messages(runtime: Runtime) -> list[str]:
    async with runtime.sessionmaker() as session:
        return list(await session.scalars(select(Message.to).order_by(Message.to)))


async def _credits_add_up(runtime: Runtime, client_id: str) -> bool:
    async with runtime.sessionmaker() as session:
        client = await session.get(ApiClient, client_id)
        assert client is not None
        return client.balance == await ledger_sum(session, client_id)


async def test_a_leased_campaign_is_left_to_its_worker_until_the_lease_runs_out(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    await _accept(http, runtime)
    now = datetime.now(UTC)
    first = CampaignWorker(runtime, worker_id="a", clock=lambda: now)
    assert await first._claim() is not None  # then "a" dies holding the lease

    other = CampaignWorker(runtime, worker_id="b", clock=lambda: now)
    assert await other.run_once() is False
    later = CampaignWorker(runtime, worker_id="b", clock=lambda: now + timedelta(minutes=5))
    assert await later.run_once() is True
    assert len(await _messages(runtime)) == ROWS


async def test_a_new_worker_resumes_where_a_crashed_one_stopped(
    http: httpx.AsyncClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    client_id, campaign_id = await _accept(http, runtime)
    real = CampaignWorker._create_batch

    async def crash(worker: CampaignWorker) -> None:
        raise RuntimeError("worker killed")

    _before_second_batch(monkeypatch, crash)
    now = datetime.now(UTC)
    with pytest.raises(RuntimeError):
        await CampaignWorker(runtime, worker_id="a", clock=lambda: now).run_once()
    assert len(await _messages(runtime)) == 2
    async with runtime.sessionmaker() as session:
        crashed = await session.get(Campaign, campaign_id)
        assert crashed is not None and crashed.last_error == "RuntimeError: worker killed"
    monkeypatch.setattr(CampaignWorker, "_create_batch", real)

    later = now + timedelta(minutes=5)
    assert await CampaignWorker(runtime, worker_id="b", clock=lambda: later).run_once()
    numbers = await _messages(runtime)
    assert numbers == sorted(f"+3361000000{n}" for n in range(ROWS))  # each once
    async with runtime.sessionmaker() as session:
        campaign = await session.get(Campaign, campaign_id)
        assert campaign is not None
        assert (campaign.status, campaign.next_row, campaign.messages_created) == (
            "created",
            ROWS,
            ROWS,
        )
    assert await _credits_add_up(runtime, client_id)


async def test_a_worker_that_lost_its_lease_stops(
    http: httpx.AsyncClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _accept(http, runtime)
    worker = CampaignWorker(runtime, worker_id="a")
    real = CampaignWorker._create_batch

    async def lose_lease_after_first(self: CampaignWorker, session: Any, *args: Any) -> bool:
        done = await real(self, session, *args)
        self.worker_id = "someone-else-took-over"
        return done

    monkeypatch.setattr(CampaignWorker, "_create_batch", lose_lease_after_first)
    await worker.run_once()
    assert len(await _messages(runtime)) == 2


async def test_the_background_loop_creates_the_messages(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    stop = asyncio.Event()
    loop = asyncio.create_task(CampaignWorker(runtime).run(stop))
    try:
        await _accept(http, runtime)
        for _ in range(100):
            if len(await _messages(runtime)) == ROWS:
                break
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(loop, 5)
    async with runtime.sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(Message)) == ROWS


async def test_a_cancel_between_batches_stops_the_worker_and_the_credits_add_up(
    http: httpx.AsyncClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    client_id, campaign_id = await _accept(http, runtime)

    async def cancel(worker: CampaignWorker) -> None:
        async with runtime.sessionmaker() as other, other.begin():
            await cancel_campaign(other, client_id, campaign_id)

    _before_second_batch(monkeypatch, cancel)
    await CampaignWorker(runtime, worker_id="a").run_once()

    async with runtime.sessionmaker() as session:
        statuses = list(await session.scalars(select(Message.status)))
        client = await session.get(ApiClient, client_id)
    assert statuses == ["cancelled", "cancelled"]
    assert client is not None and client.balance == Decimal(100)
    assert await _credits_add_up(runtime, client_id)


async def test_the_background_loop_outlives_an_unexpected_error(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = 0

    async def fail_once(self: CampaignWorker) -> bool:
        nonlocal runs
        runs += 1
        if runs == 1:
            raise RuntimeError("a bug")
        return False

    monkeypatch.setattr(CampaignWorker, "run_once", fail_once)
    stop = asyncio.Event()
    loop = asyncio.create_task(CampaignWorker(runtime).run(stop))
    for _ in range(100):
        if runs >= 2:
            break
        await asyncio.sleep(0.02)
    stop.set()
    await asyncio.wait_for(loop, 5)
    assert runs >= 2
