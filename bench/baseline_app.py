"""The baseline: a bare FastAPI endpoint that does one INSERT per request.

Same server stack as smsgateway (uvicorn with uvloop and httptools, FastAPI, SQLAlchemy's
async engine over asyncpg, a pool of the same size), same database server, same request
body; nothing else. ``uvicorn bench.baseline_app:app`` with ``BENCH_DATABASE_URL`` set.

* ``POST /events``: inserts the event (its id and the raw body) in one transaction
  and answers ``202`` with the row id: BEGIN, INSERT ... RETURNING, COMMIT.
* ``GET /ping``: no database, to measure the load generator's own ceiling.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from sqlalchemy import BigInteger, Column, DateTime, MetaData, String, Table, Text, func, insert
from sqlalchemy.ext.asyncio import create_async_engine

metadata = MetaData()
events = Table(
    "bench_baseline_events",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("event_id", String(128), nullable=False),
    Column("body", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), server_default=func.now()),
)

engine = create_async_engine(
    os.environ.get("BENCH_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1/postgres"),
    pool_size=int(os.environ.get("BENCH_POOL_SIZE", "10")),
    max_overflow=int(os.environ.get("BENCH_POOL_SIZE", "10")),
)


async def create_table(url: str) -> None:
    """Create the baseline's table (the harness does it once, before the workers start)."""
    admin = create_async_engine(url)
    try:
        async with admin.begin() as connection:
            await connection.run_sync(metadata.create_all)
    finally:
        await admin.dispose()


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    yield
    await engine.dispose()


app = FastAPI(lifespan=lifespan, openapi_url=None)


@app.post("/events", status_code=202)
async def post_event(request: Request, event: dict[str, Any]) -> dict[str, Any]:
    body = await request.body()
    async with engine.begin() as connection:
        row_id = await connection.scalar(
            insert(events)
            .values(event_id=str(event.get("event_id", "")), body=body.decode())
            .returning(events.c.id)
        )
    return {"id": row_id, "event_id": event.get("event_id")}


@app.get("/ping")
async def ping() -> dict[str, str]:
    return {"status": "ok"}
