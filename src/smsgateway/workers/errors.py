"""What a worker waits out rather than treats as a bug."""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError, OperationalError

# The database went away, refused a connection or broke one: each loop backs off
# and tries again; nothing it held is lost (leases bring rows back). Every
# driver error counts, as it always has in these loops: a deadlock or a failover
# surfaces as one, and a pass is safe to repeat.
TRANSIENT_DATABASE_ERRORS: tuple[type[Exception], ...] = (
    OperationalError,
    DBAPIError,
    OSError,
    ConnectionError,
)
