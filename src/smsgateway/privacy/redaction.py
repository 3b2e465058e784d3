"""What redacting a stored row means, table by table; shared by retention and erasure.

Texts become ``[redacted]``; numbers are masked (``+336******04``: the country
stays readable for statistics); webhook payloads keep only their id, type
and time; an event's stored answer keeps its messages' ids and statuses,
numbers masked. Counts, statuses, credits and the ledger never change.
"""

from __future__ import annotations

from typing import Any

from smsgateway.numbers import mask

REDACTED = "[redacted]"


def masked(number: str) -> str:
    """A number masked once (masking a masked number changes nothing)."""
    return number if "*" in number else mask(number)


def redacted_payload(payload: dict[str, Any]) -> dict[str, Any]:
    kept: dict[str, Any] = {k: payload[k] for k in ("id", "type", "created_at") if k in payload}
    return {**kept, "data": {}, "redacted": True}


def redacted_answer(answer: Any) -> Any:
    """An event's stored answer with every ``to`` masked (nested anywhere)."""
    if isinstance(answer, dict):
        return {
            key: masked(value) if key == "to" and isinstance(value, str) else redacted_answer(value)
            for key, value in answer.items()
        }
    if isinstance(answer, list):
        return [redacted_answer(item) for item in answer]
    return answer


def mentions(payload: Any, number: str) -> bool:
    """Whether ``number`` appears as a value anywhere in ``payload``."""
    if isinstance(payload, dict):
        return any(mentions(value, number) for value in payload.values())
    if isinstance(payload, list):
        return any(mentions(item, number) for item in payload)
    return bool(payload == number)


def without(payload: Any, number: str) -> Any:
    """``payload`` with every list item that names ``number`` left out (nested anywhere)."""
    if isinstance(payload, dict):
        return {key: without(value, number) for key, value in payload.items()}
    if isinstance(payload, list):
        return [without(item, number) for item in payload if not mentions(item, number)]
    return payload
