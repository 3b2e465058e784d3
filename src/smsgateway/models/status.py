"""The message lifecycle.

::

    queued ──► sending ──► submitted ──► delivered | failed | expired
      ▲           │
      └─(retry)───┘          (queued/sending may also end failed or expired)
    queued ──► cancelled
    blocked, rejected: created but never sent (final from the start)

A status only moves forward: ``rank`` orders them, and a delivery report that
would move a message to an equal or lower rank (a late "pending" after
"delivered") changes nothing. Final statuses never change.
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SUBMITTED = "submitted"
    DELIVERED = "delivered"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    BLOCKED = "blocked"
    REJECTED = "rejected"


FINAL = frozenset(
    {
        Status.DELIVERED,
        Status.FAILED,
        Status.EXPIRED,
        Status.CANCELLED,
        Status.BLOCKED,
        Status.REJECTED,
    }
)

_RANK = {Status.QUEUED: 0, Status.SENDING: 1, Status.SUBMITTED: 2}


def rank(status: str) -> int:
    return 3 if status in FINAL else _RANK[Status(status)]


def moves_forward(current: str, new: str) -> bool:
    """True when ``new`` is a real step forward from ``current``."""
    if current in FINAL:
        return False
    return rank(new) > rank(current)
