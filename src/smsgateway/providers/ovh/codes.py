"""OVHcloud ``dlr`` and ``ptt`` codes (the provider's delivery-report vocabulary)."""

from __future__ import annotations

from smsgateway.models.status import Status

DLR_PENDING = frozenset({0, 4, 8})
DLR_DELIVERED = 1
DLR_FAILED = 2
DLR_NOT_BILLED = 16

# Short, stable reasons for the ptt codes OVHcloud documents.
PTT_REASONS: dict[int, str] = {
    1: "phone_problem_retrying",
    2: "operator_problem_retrying",
    3: "accepted_by_operator",
    4: "delivered",
    5: "undelivered",
    6: "unknown_outcome",
    8: "expired",
    20: "undeliverable",
    21: "subscriber_out_of_credit",
    23: "invalid_number",
    24: "subscriber_absent",
    25: "operator_network_error",
    26: "phone_error",
    27: "handset_incompatible",
    28: "spam_suspected",
    29: "content_not_permitted",
    33: "parental_lock",
    39: "operator_failure",
    73: "ported_unreachable",
    74: "roaming",
    76: "ported_blocked",
    202: "ported_blocked",
}


def outcome(dlr: int, ptt: int | None) -> tuple[str, str | None] | None:
    """The message status (and reason) a report means, or None if it means nothing."""
    if dlr == DLR_DELIVERED:
        return Status.DELIVERED.value, None
    if dlr in DLR_PENDING:
        return Status.SUBMITTED.value, None
    detail = PTT_REASONS.get(ptt, f"ptt_{ptt}") if ptt is not None else None
    if dlr == DLR_FAILED:
        if ptt == 8:
            return Status.EXPIRED.value, "expired"
        return Status.FAILED.value, detail or "failed"
    if dlr == DLR_NOT_BILLED:
        return Status.FAILED.value, "not_billed" + (f": {detail}" if detail else "")
    return None
