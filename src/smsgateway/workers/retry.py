"""The retry strategy: how long to wait after a failure, and when to give up."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with jitter, bounded in delay and attempts."""

    base_seconds: float
    max_seconds: float
    max_attempts: int

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based).

        Half of the exponential delay is fixed and half random, so retries of
        many messages failing together spread out instead of returning in step.
        A provider's ``Retry-After`` is a floor.
        """
        exponential: float = min(self.max_seconds, self.base_seconds * 2.0 ** (attempt - 1))
        delay = exponential / 2 + random.uniform(0, exponential / 2)  # noqa: S311
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.max_seconds))
        return delay

    def exhausted(self, attempt: int) -> bool:
        return attempt >= self.max_attempts
