"""The engine's own settings, whatever the database server's defaults are."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

from smsgateway.db import create_engine
from tests.databases import own_postgres_database, postgres_server_url


async def _isolation_of_new_sessions(url: str) -> str:
    engine = create_engine(url, pool_size=1)
    try:
        async with engine.connect() as connection:
            return str((await connection.execute(text("SHOW transaction_isolation"))).scalar())
    finally:
        await engine.dispose()


async def _set_default_isolation(url: str, level: str) -> None:
    database = make_url(url).database
    admin = create_async_engine(
        make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT"
    )
    try:
        async with admin.connect() as connection:
            await connection.execute(
                text(f"ALTER DATABASE \"{database}\" SET default_transaction_isolation = '{level}'")
            )
    finally:
        await admin.dispose()


def test_postgres_sessions_are_read_committed_whatever_the_server_default() -> None:
    server_url = postgres_server_url()
    if server_url is None:
        pytest.skip("isolation levels are PostgreSQL's; SQLite serialises writers")
    with own_postgres_database(server_url, "isolation") as url:
        asyncio.run(_set_default_isolation(url, "repeatable read"))
        assert asyncio.run(_isolation_of_new_sessions(url)) == "read committed"
