"""Large campaigns: 100,000 rows accepted in bounded memory without blocking the API,
and the worker turning thousands of rows into paced messages.

The real message creation runs on 5,000 rows to keep the suite quick; the
100,000-row file goes through the whole acceptance (upload, survey, credits
held, CSV stored), which is the part a request waits for.
"""

from __future__ import annotations

import asyncio
import time
import tracemalloc
from pathlib import Path

import httpx
from sqlalchemy import func, select

from smsgateway.campaigns.worker import CampaignWorker
from smsgateway.models.campaigns import Campaign, CampaignChunk
from smsgateway.models.clients import ApiClient
from smsgateway.models.messages import Message
from smsgateway.runtime import Runtime
from tests.factories import make_client

TEXT = "Hi #FIRSTNAME#, your code #CODE# gives -20% this week."
MIB = 1024 * 1024


def _write_csv(path: Path, rows: int) -> Path:
    with path.open("w", encoding="utf-8") as out:
        out.write("number;firstname;code\n")
        for n in range(rows):
            out.write(f"+336{10_000_000 + n:08d};Name{n};C{n:06d}\n")
    return path


async def _upload(
    http: httpx.AsyncClient, auth: dict[str, str], path: Path, **fields: str
) -> httpx.Response:
    with path.open("rb") as csv:
        return await http.post(
            "/v1/campaigns",
            data={"name": "Big", "text": TEXT, **fields},
            files={"file": ("big.csv", csv, "text/csv")},
            headers=auth,
            timeout=120,
        )


async def test_a_100000_row_campaign_is_accepted_in_bounded_memory_without_blocking(
    http: httpx.AsyncClient, runtime: Runtime, tmp_path: Path
) -> None:
    rows = 100_000
    path = _write_csv(tmp_path / "big.csv", rows)
    assert path.stat().st_size > 2 * MIB
    shop = await make_client(runtime, "big shop", quota=rows)

    async def probe() -> float:
        # Another request while the upload is being surveyed.
        await asyncio.sleep(0.5)
        response = await http.get("/v1/campaigns", headers=shop.auth)
        assert response.status_code == 200
        return time.monotonic()

    tracemalloc.start()
    try:
        started = time.monotonic()
        response, probed_at = await asyncio.gather(_upload(http, shop.auth, path), probe())
        finished = time.monotonic()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert response.status_code == 202, response.text
    summary = response.json()["summary"]
    assert (summary["rows"], summary["recipients"], summary["credits"]) == (rows, rows, rows)
    print(f"100,000 rows: peak {peak / MIB:.1f} MiB traced, {finished - started:.1f} s")
    assert peak < 50 * MIB, f"peak {peak / MIB:.1f} MiB"
    assert probed_at < finished, "the API answered nothing while the file was read"
    # About 15 s alone (tracemalloc slows it down threefold); only a hang fails here.
    assert finished - started < 300
    async with runtime.sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(CampaignChunk)) == 3
        client = await session.get(ApiClient, shop.id)
        assert client is not None and client.balance == 0


async def test_the_worker_creates_thousands_of_paced_messages_in_batches(
    http: httpx.AsyncClient, runtime: Runtime, tmp_path: Path
) -> None:
    rows = 5_000
    runtime.settings = runtime.settings.model_copy(
        update={
            "marketing": runtime.settings.marketing.model_copy(update={"hours_enabled": False}),
            "campaigns": runtime.settings.campaigns.model_copy(update={"rate_per_second": 50.0}),
        }
    )
    shop = await make_client(runtime, "big shop", quota=rows)
    accepted = await _upload(
        http, shop.auth, _write_csv(tmp_path / "mid.csv", rows), quiet_hours="false"
    )
    assert accepted.status_code == 202, accepted.text

    started = time.monotonic()
    assert await CampaignWorker(runtime, worker_id="w").run_once() is True
    assert time.monotonic() - started < 300  # about 1.5 s alone

    campaign = (await http.get(f"/v1/campaigns/{accepted.json()['id']}", headers=shop.auth)).json()
    assert campaign["progress"]["messages"] == rows
    async with runtime.sessionmaker() as session:
        first, last = (
            await session.execute(select(func.min(Message.due_at), func.max(Message.due_at)))
        ).one()
        sample = await session.scalar(select(Message.text).where(Message.to == "+33610004999"))
        stored = await session.get(Campaign, accepted.json()["id"])
        client = await session.get(ApiClient, shop.id)
    # 5,000 messages at 50 a second: the last is due 99.98 s after the first.
    assert first is not None and last is not None
    assert (last - first).total_seconds() == 99.98
    assert sample == "Hi Name4999, your code C004999 gives -20% this week."
    assert stored is not None and stored.credits_held == 0
    assert client is not None and client.balance == 0
