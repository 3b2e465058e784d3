"""What one attempt at sending a message came to, before it is stored.

The dispatcher decides an ``Outcome`` for each message of a job, and stores
it through ``lifecycle.finish_attempt`` with one ``SendAttempt`` row. Each
function here is one kind of ending: accepted (or found at the provider),
refused, to be retried, put back without spending an attempt, expired.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from smsgateway.db import utcnow
from smsgateway.messages.queue import Claimed
from smsgateway.models.status import Status
from smsgateway.providers.base import JobResult, ProviderError, TransientProviderError
from smsgateway.workers.retry import RetryPolicy


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one message of a job, to be stored."""

    status: Status
    attempt: str
    values: dict[str, Any]
    error: str | None = None
    status_code: int | None = None
    provider_id: str | None = None
    refund_reason: str | None = None
    notify: bool = False


Decide = Callable[[Claimed], Outcome]


def submitted(provider: str, provider_id: str, attempt: str, tag: str | None) -> Outcome:
    """The provider has it under ``provider_id`` (accepted now, or found by a look-up)."""
    values: dict[str, Any] = {
        "provider": provider,
        "provider_id": provider_id,
        "submitted_at": utcnow(),
        "uncertain": False,
        "uncertain_since": None,
        "last_error": None,
    }
    if tag is not None:
        values["job_tag"] = tag
    return Outcome(Status.SUBMITTED, attempt, values, provider_id=provider_id, notify=True)


def from_result(
    message: Claimed,
    result: JobResult,
    *,
    provider: str,
    tag: str,
    size: int,
    policy: RetryPolicy,
    now: datetime,
) -> Outcome:
    """The provider answered a job: this message's part of the answer.

    A receiver the answer names neither valid nor invalid may have been
    taken: it is uncertain, looked up before any resend, not failed.
    """
    provider_id = result.ids.get(message.to)
    if provider_id is None and size == 1 and len(result.ids) == 1:
        # A provider may echo the receiver in another format (00 prefix).
        provider_id = next(iter(result.ids.values()))
    if provider_id is not None:
        return submitted(provider, provider_id, "accepted", tag)
    if message.to in result.invalid_receivers:
        return failed("invalid_receiver", None)
    # Not a failed attempt, whatever the count: it may have gone. Looked up, it is
    # adopted or proven absent; its validity bounds the wait.
    reason = "the answer does not name this receiver"
    values: dict[str, Any] = {
        "due_at": now + timedelta(seconds=policy.delay(message.attempts, None)),
        "uncertain": True,
        "uncertain_since": now,
        "last_error": reason,
        "job_tag": tag,
    }
    return Outcome(Status.QUEUED, "transient", values, error=reason)


def failed(reason: str, exc: ProviderError | None, *, maybe_billed: bool = False) -> Outcome:
    """The SMS will not go: refused, or out of attempts."""
    return Outcome(
        Status.FAILED,
        "permanent",
        {"reason": reason[:255], "final_at": utcnow(), "due_at": None},
        error=reason,
        status_code=exc.status_code if exc else None,
        # The provider never accepted it: nothing was billed.
        refund_reason=None if maybe_billed else f"not sent: {reason}",
        notify=True,
    )


def expired(message: Claimed, started: datetime, maybe_sent: bool = False) -> Outcome:
    """Past its validity before it could go (``maybe_sent``: or it may have gone)."""
    return Outcome(
        Status.EXPIRED,
        "expired",
        {"reason": "validity_exceeded", "final_at": started, "due_at": None},
        error="validity_exceeded",
        # Uncertain and never settled by a look-up: it may have been billed, keep the charge.
        refund_reason=None if maybe_sent else "expired before sending",
        notify=True,
    )


def retry(
    message: Claimed,
    exc: TransientProviderError | ProviderError,
    *,
    policy: RetryPolicy,
    tag: str,
    now: datetime,
    lookup: bool = False,
) -> Outcome:
    """A transient failure: back to the queue after the policy's delay, or failed when spent.

    ``lookup``: the failure was a look-up's, so the message stays uncertain
    and keeps its settle time; a send that may have reached the provider
    restarts it, because the provider lists an SMS only once its job has run.
    """
    is_uncertain = lookup or (isinstance(exc, TransientProviderError) and exc.uncertain)
    if policy.exhausted(message.attempts):
        return failed(
            f"provider_unavailable: {exc.reason}",
            exc,
            # An SMS the provider may have taken may also have been billed.
            maybe_billed=is_uncertain or message.uncertain,
        )
    retry_after = exc.retry_after if isinstance(exc, TransientProviderError) else None
    since = (message.uncertain_since or now) if lookup else now
    values: dict[str, Any] = {
        "due_at": now + timedelta(seconds=policy.delay(message.attempts, retry_after)),
        "uncertain": is_uncertain,
        "uncertain_since": since if is_uncertain else None,
        "last_error": exc.reason[:255],
    }
    if is_uncertain:
        values["job_tag"] = message.job_tag if lookup else tag
    return Outcome(
        Status.QUEUED, "transient", values, error=exc.reason, status_code=exc.status_code
    )


def release(due: datetime, attempt: str, *, error: str | None = None, **extra: Any) -> Decide:
    """Back to the queue until ``due`` without spending an attempt."""

    def outcome(message: Claimed) -> Outcome:
        values = {"due_at": due, "attempts": message.attempts - 1, **extra}
        if error is not None:
            values["last_error"] = error
        return Outcome(Status.QUEUED, attempt, values, error=error)

    return outcome
