"""Leasing rows to one worker, so that no two workers ever hold the same one.

Every claim has one shape: pick the ready rows, oldest first, up to a limit,
locked with ``FOR UPDATE SKIP LOCKED``; then stamp them as this worker's in the
same statement. On PostgreSQL concurrent workers so take disjoint sets without
waiting on each other; SQLite ignores the lock clause and serialises writers,
which gives the same result for the single process it serves.
"""

from __future__ import annotations

import os
import socket
import uuid
from typing import Any

from sqlalchemy import ColumnElement, Update, select, update
from sqlalchemy.orm import InstrumentedAttribute


def default_worker_id() -> str:
    """This process's name as a lease owner: host, pid and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def claim_rows(
    key: InstrumentedAttribute[str],
    ready: ColumnElement[bool],
    *,
    order_by: InstrumentedAttribute[Any],
    limit: int,
    name: str,
    recheck: ColumnElement[bool] | None = None,
) -> Update:
    """An UPDATE of at most ``limit`` rows that ``ready`` selects, none held by another worker.

    ``key`` is the table's primary key; ``name`` names the CTE of candidates.
    ``recheck`` is tested again on each locked row (a row may have changed between
    the snapshot that chose it and the lock). The caller adds ``values`` (the lease)
    and ``returning``, and commits.
    """
    # Materialised so PostgreSQL runs the locking sub-select once: inlined into
    # a semi-join it can be rescanned per row, and LIMIT would then not bound the claim.
    candidates = (
        select(key)
        .where(ready)
        .order_by(order_by)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .cte(name)
        .prefix_with("MATERIALIZED", dialect="postgresql")
    )
    statement = update(key.class_).where(key.in_(select(candidates.c[key.key])))
    if recheck is not None:
        statement = statement.where(recheck)
    return statement.execution_options(synchronize_session=False)
