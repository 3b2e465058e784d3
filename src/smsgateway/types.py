"""Column types used across domains."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON
from sqlalchemy.dialects.postgresql import JSONB

# JSONB on PostgreSQL (indexable, compact), plain JSON text on SQLite.
JsonType: Any = JSON().with_variant(JSONB(), "postgresql")
