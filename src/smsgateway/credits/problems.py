"""The problem a request that needs more credits than are left is answered with."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from smsgateway.errors import Problem


def insufficient_credits(
    detail: str, *, credits_needed: float | None = None, credits_left: float | None = None
) -> Problem:
    """The 402 problem of every request that asks for more credits than are left."""
    figures = {"credits_needed": credits_needed, "credits_left": credits_left}
    given: dict[str, Any] = {name: value for name, value in figures.items() if value is not None}
    return Problem(402, "insufficient-credits", "Not enough credits", detail, **given)


def not_enough(needed: Decimal, left: Decimal, what: str = "This request") -> Problem:
    """The 402 of ``what`` needing ``needed`` credits when ``left`` are left."""
    return insufficient_credits(
        f"{what} needs {amount(needed)} credits and {amount(left)} are left.",
        credits_needed=float(needed),
        credits_left=float(left),
    )


def amount(value: Decimal | float | int | None) -> str:
    """An amount of credits as people write it: ``2``, ``0.5`` (no trailing zeros)."""
    if value is None:
        return "0"
    return f"{Decimal(value).normalize():f}"
