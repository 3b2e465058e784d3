"""The message lifecycle.

::

    queued ──► sending ──► submitted ──► delivered | failed | expired
      ▲           │
      └─(retry)───┘          (queued/sending may also end failed or expired)
    queued ──► cancelled
    blocked, rejected: created but never sent (final from the start)

``TRANSITIONS`` is that picture as a table, and the only moves
``messages.lifecycle`` makes. A status only moves forward, with one step
back: ``sending`` returns to ``queued`` for a retry, the SMS not accepted.
``rank`` orders the rest, so a delivery report that would move a message to
an equal or lower rank (a late "pending" after "delivered") changes nothing.
Final statuses never change.
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

_ENDINGS = frozenset({Status.DELIVERED, Status.FAILED, Status.EXPIRED})

# Every move a message can make, from its current status.
TRANSITIONS: dict[Status, frozenset[Status]] = {
    # claimed; cancelled or blocked before any send; ended by a report or the expiry check
    Status.QUEUED: frozenset({Status.SENDING, Status.CANCELLED, Status.BLOCKED}) | _ENDINGS,
    # taken over (its lease ran out); back for a retry; accepted; ended
    Status.SENDING: frozenset({Status.SENDING, Status.QUEUED, Status.SUBMITTED}) | _ENDINGS,
    # its report, or no report in time
    Status.SUBMITTED: _ENDINGS,
}

_RANK = {Status.QUEUED: 0, Status.SENDING: 1, Status.SUBMITTED: 2}


def rank(status: str) -> int:
    return 3 if status in FINAL else _RANK[Status(status)]


def can_move(current: str, new: str) -> bool:
    """True when the table allows ``current`` to become ``new``."""
    return Status(new) in TRANSITIONS.get(Status(current), frozenset())


def moves_forward(current: str, new: str) -> bool:
    """True when ``new`` is a real step forward from ``current`` (what a report may do)."""
    return can_move(current, new) and rank(new) > rank(current)
