"""An ``SmsProvider`` decorator that times and counts every call to the provider.

It logs one line per send (``provider call``) with the operation, outcome and duration;
the request id in the log context is the one of the HTTP request that created the
message (the dispatcher sets it), so the line can be found from the marketplace's request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from smsgateway.observability.metrics import Metrics
from smsgateway.providers.base import (
    IncomingSms,
    JobResult,
    OutgoingJob,
    OutgoingStatus,
    PermanentProviderError,
    ProviderError,
    SmsProvider,
    TransientProviderError,
)

log = logging.getLogger("smsgateway.provider")

T = TypeVar("T")


class InstrumentedProvider:
    """Wraps a provider; every other attribute is the wrapped provider's."""

    def __init__(self, inner: SmsProvider, metrics: Metrics) -> None:
        self.inner = inner
        self.name = inner.name
        self._metrics = metrics

    def __getattr__(self, name: str) -> Any:
        # Only called for attributes not found here (a test's ``provider.sent``...).
        return getattr(self.inner, name)

    def __repr__(self) -> str:
        return f"InstrumentedProvider({self.inner!r})"

    async def _timed(self, operation: str, call: Callable[[], Awaitable[T]]) -> T:
        started = time.perf_counter()
        outcome, kind = "ok", ""
        error: ProviderError | None = None
        try:
            return await call()
        except TransientProviderError as exc:
            outcome, kind, error = "transient", "uncertain" if exc.uncertain else "transient", exc
            raise
        except PermanentProviderError as exc:
            outcome, kind, error = "permanent", "permanent", exc
            raise
        except Exception:
            outcome, kind = "error", "unexpected"
            raise
        finally:
            elapsed = time.perf_counter() - started
            self._metrics.provider_duration.labels(operation, outcome).observe(elapsed)
            if kind:
                code = error.status_code if error is not None else None
                self._metrics.provider_errors.labels(
                    operation, kind, str(code) if code is not None else "none"
                ).inc()
            if operation == "send" or kind:
                log.info(
                    "provider call %s %s in %.1f ms",
                    operation,
                    outcome,
                    elapsed * 1000,
                    extra={
                        "provider": self.name,
                        "operation": operation,
                        "outcome": outcome,
                        "duration_ms": round(elapsed * 1000, 2),
                    },
                )

    async def send(self, job: OutgoingJob) -> JobResult:
        return await self._timed("send", lambda: self.inner.send(job))

    async def find_by_tag(self, tag: str) -> list[str]:
        return await self._timed("find_by_tag", lambda: self.inner.find_by_tag(tag))

    async def outgoing(self, provider_id: str) -> OutgoingStatus | None:
        return await self._timed("outgoing", lambda: self.inner.outgoing(provider_id))

    async def pending_jobs(self) -> list[str]:
        return await self._timed("pending_jobs", self.inner.pending_jobs)

    async def pending_job(self, job_id: str) -> str | None:
        return await self._timed("pending_job", lambda: self.inner.pending_job(job_id))

    async def fetch_incoming(self) -> list[IncomingSms]:
        return await self._timed("fetch_incoming", self.inner.fetch_incoming)

    async def delete_incoming(self, provider_id: str) -> None:
        await self._timed("delete_incoming", lambda: self.inner.delete_incoming(provider_id))

    async def fetch_blacklist(self) -> list[str]:
        return await self._timed("fetch_blacklist", self.inner.fetch_blacklist)

    async def aclose(self) -> None:
        await self.inner.aclose()


def instrument(provider: SmsProvider, metrics: Metrics) -> SmsProvider:
    """``provider`` timed and counted into ``metrics`` (never wrapped twice)."""
    if isinstance(provider, InstrumentedProvider):
        return provider
    return InstrumentedProvider(provider, metrics)
