"""Database engine, sessions and the column types shared by every table.

SQLite (aiosqlite) is the embedded default and PostgreSQL (asyncpg) the
production store; the schema and queries are written once for both.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import DateTime, MetaData, event, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both backends.

    SQLite has no timezone type, so values are stored as naive UTC and read
    back as aware UTC; ordering and comparison then work the same everywhere.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def sqlstate(exc: Exception) -> str:
    """The SQLSTATE of a database error (PostgreSQL, or ``UnstorableValue``), else ""."""
    if isinstance(exc, UnstorableValue):
        return exc.sqlstate
    original = getattr(exc, "orig", None)
    code = getattr(original, "sqlstate", None) or getattr(original, "pgcode", None)
    return str(code or "")


async def advisory_lock(session: AsyncSession, name: str) -> None:
    """Hold, until commit, PostgreSQL's advisory lock for ``name`` (SQLite serialises writers)."""
    if session.get_bind().dialect.name != "postgresql":
        return
    key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
    await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def upsert_for(session: AsyncSession) -> Any:
    """The ``insert`` with ``on_conflict_do_…`` for the session's backend."""
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


class _Clock:
    """The database's clock as this process reads it: its own plus the offset last measured."""

    offset = timedelta(0)


def utcnow() -> datetime:
    """Now, by the database's clock (see ``sync_clock``).

    Every time the gateway stores or compares (leases, settle windows, due
    times, reservations) comes from here, so a process whose clock is off
    behaves exactly like the others once it has measured the difference.
    """
    return datetime.now(UTC) + _Clock.offset


def clock_offset() -> timedelta:
    """How far the database's clock is ahead of this process's (negative: behind)."""
    return _Clock.offset


async def sync_clock(engine: AsyncEngine) -> timedelta:
    """Measure this process's clock against PostgreSQL's; returns the offset now used.

    The database's ``clock_timestamp()`` is taken as the middle of the round
    trip. SQLite runs inside the process and has no clock of its own: there
    the offset stays 0.
    """
    if engine.dialect.name != "postgresql":
        return _Clock.offset
    async with engine.connect() as connection:
        before = datetime.now(UTC)
        theirs = await connection.scalar(text("SELECT clock_timestamp()"))
        after = datetime.now(UTC)
    if isinstance(theirs, datetime):
        _Clock.offset = theirs - (before + (after - before) / 2)
    return _Clock.offset


def create_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    """An engine tuned for the backend: WAL and a busy timeout on SQLite; READ COMMITTED on PG."""
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"timeout": 30}
    else:
        kwargs["pool_size"] = pool_size
        kwargs["max_overflow"] = pool_size
        kwargs["pool_pre_ping"] = True
        # Pinned, not inherited from the server's default: the early-report hand-off and
        # the SKIP LOCKED claims rely on each statement seeing rows committed before it.
        kwargs["isolation_level"] = "READ COMMITTED"
    # Parameters stay out of error messages: they hold message texts and codes.
    engine = create_async_engine(url, hide_parameters=True, **kwargs)
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "before_cursor_execute", _refuse_nul)
    return engine


class UnstorableValue(Exception):
    """A text PostgreSQL could not store (it holds NUL), refused on SQLite the same way."""

    sqlstate = "22021"  # PostgreSQL's character_not_in_repertoire


def _refuse_nul(_connection: Any, _cursor: Any, _statement: str, parameters: Any, *_: Any) -> None:
    """Make SQLite refuse what PostgreSQL refuses: NUL in text, as a ``22…`` error."""
    rows = parameters if isinstance(parameters, list) else [parameters]
    for row in rows:
        values = row.values() if isinstance(row, dict) else row
        if any(isinstance(value, str) and "\x00" in value for value in values or ()):
            raise UnstorableValue("a text value holds the NUL character")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the API read while the dispatcher writes; foreign keys are off by default.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


async def session_scope(
    factory: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """One unit of work: commit on success, roll back on any error."""
    async with factory() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise
