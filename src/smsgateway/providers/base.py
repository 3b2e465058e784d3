"""The contract every SMS provider adapter fulfils.

Exception hierarchy::

    ProviderError                  anything that went wrong talking to the provider
    ├── TransientProviderError     worth retrying later (timeout, connection, 429, 5xx)
    │                              ``uncertain`` is true when the provider may have
    │                              accepted the SMS before the failure (request sent,
    │                              answer lost): such a send is looked up before retrying.
    └── PermanentProviderError     retrying will not help (bad credentials, refused text)
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Protocol

# The ``loop.time()`` after which a send may no longer leave this process (see ``deadline``).
_SEND_DEADLINE: ContextVar[float | None] = ContextVar("send_deadline", default=None)


class ProviderError(Exception):
    """Base class of provider failures. ``reason`` is safe to store and show."""

    def __init__(self, reason: str, *, status_code: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status_code = status_code


class TransientProviderError(ProviderError):
    """A failure worth retrying; ``retry_after`` is the provider's hint in seconds."""

    def __init__(
        self,
        reason: str,
        *,
        status_code: int | None = None,
        retry_after: float | None = None,
        uncertain: bool = False,
    ) -> None:
        super().__init__(reason, status_code=status_code)
        self.retry_after = retry_after
        self.uncertain = uncertain


class PermanentProviderError(ProviderError):
    """A failure that will happen again: the message fails with this reason."""


@contextmanager
def deadline(at: float) -> Iterator[None]:
    """Within the block, no request leaves after ``at`` (``loop.time()``): see ``check_deadline``.

    The dispatcher sets it around a send, from the moment it renews the lease,
    so that a worker stalled past its lease can never send what another
    worker has taken over since.
    """
    token = _SEND_DEADLINE.set(at)
    try:
        yield
    finally:
        _SEND_DEADLINE.reset(token)


def check_deadline() -> None:
    """Raise, as not sent, once the current send's deadline has passed (just before sending)."""
    at = _SEND_DEADLINE.get()
    if at is not None and asyncio.get_running_loop().time() >= at:
        raise TransientProviderError(
            "send deadline passed before the request left", uncertain=False
        )


@dataclass(frozen=True, slots=True)
class OutgoingJob:
    """One provider call: the same text to one or more receivers (E.164)."""

    text: str
    receivers: list[str]
    tag: str
    no_stop_clause: bool = True
    sender: str | None = None
    validity_minutes: int | None = None
    priority: str = "high"


@dataclass(frozen=True, slots=True)
class JobResult:
    """What the provider accepted: ``ids`` maps each valid receiver to its SMS id."""

    ids: dict[str, str]
    invalid_receivers: list[str] = field(default_factory=list)
    credits_removed: float = 0.0


@dataclass(frozen=True, slots=True)
class IncomingSms:
    """An SMS a user sent to our short number, as the provider holds it."""

    provider_id: str
    sender: str
    text: str
    received_at: str | None = None


@dataclass(frozen=True, slots=True)
class OutgoingStatus:
    """What the provider knows of one SMS it sent: its receiver and delivery state."""

    provider_id: str
    receiver: str
    dlr: int | None
    ptt: int | None
    tag: str | None = None


class SmsProvider(Protocol):
    """An SMS provider as the dispatcher sees it."""

    name: str

    async def send(self, job: OutgoingJob) -> JobResult:
        """Submit one job. Raises a ``ProviderError`` subclass on failure."""
        ...

    async def find_by_tag(self, tag: str) -> list[str]:
        """Provider SMS ids already sent with ``tag`` (to settle an uncertain send)."""
        ...

    async def outgoing(self, provider_id: str) -> OutgoingStatus | None:
        """One sent SMS, or None if the provider does not know it."""
        ...

    async def pending_jobs(self) -> list[str]:
        """Ids of jobs the provider has taken and not run yet (not listed as sent)."""
        ...

    async def pending_job(self, job_id: str) -> str | None:
        """The receiver of one pending job, or None if it is no longer pending."""
        ...

    async def fetch_incoming(self) -> list[IncomingSms]:
        """SMS received and not yet deleted at the provider (oldest first)."""
        ...

    async def delete_incoming(self, provider_id: str) -> None:
        """Remove an incoming SMS once it is stored on our side."""
        ...

    async def fetch_blacklist(self) -> list[str]:
        """Numbers the provider itself has opted out (STOP to its own number)."""
        ...

    async def remove_from_blacklist(self, number: str) -> None:
        """Take a number off the provider's blacklist (it sent START)."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...
