"""Databases of their own: for the suite's run, and for tests that start real processes.

The suite's shared database is emptied after every test, so a test whose processes
outlive one fixture, or that needs rows nobody else touches, makes a database of its
own on the server of ``SMSGW_TEST_DATABASE_URL`` (or a SQLite file without one).
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine


def postgres_server_url() -> str | None:
    """The PostgreSQL server the suite runs on, or None on SQLite."""
    url = os.environ.get("SMSGW_TEST_DATABASE_URL", "")
    return url if url.startswith("postgresql") else None


async def _admin(server_url: str, statement: str) -> None:
    url = make_url(server_url).set(database="postgres")
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.execute(text(statement))
    finally:
        await engine.dispose()


@contextmanager
def own_postgres_database(
    server_url: str, prefix: str, *, asynchronous_commit: bool = False
) -> Iterator[str]:
    """A new, empty database (``<prefix>_<random>``) on ``server_url``'s server; dropped after.

    ``asynchronous_commit`` makes commits return before PostgreSQL has flushed them
    to disk: faster, and only a crash of PostgreSQL itself could lose them, which
    these tests never cause (they kill the gateway's processes, not the database).
    Call it from sync code only: it runs its statements in a loop of its own.
    """
    name = f"{prefix}_{secrets.token_hex(5)}"
    asyncio.run(_admin(server_url, f'CREATE DATABASE "{name}"'))
    if asynchronous_commit:
        asyncio.run(_admin(server_url, f'ALTER DATABASE "{name}" SET synchronous_commit = off'))
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(_admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextmanager
def own_database(tmp_path: Path, prefix: str) -> Iterator[str]:
    """A fresh, empty database URL, of the kind the suite runs on.

    On PostgreSQL a database of its own, dropped afterwards; else a SQLite file
    ``<prefix>.db`` in ``tmp_path``.
    """
    server = postgres_server_url()
    if server is None:
        yield f"sqlite+aiosqlite:///{tmp_path / f'{prefix}.db'}"
        return
    with own_postgres_database(server, prefix) as url:
        yield url
