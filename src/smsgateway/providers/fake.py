"""An in-memory ``SmsProvider`` for tests and local runs: records instead of sending."""

from __future__ import annotations

import asyncio

from smsgateway.providers.base import (
    IncomingSms,
    JobResult,
    OutgoingJob,
    OutgoingStatus,
    ProviderError,
)

MAX_TAG_LENGTH = 20


class FakeProvider:
    """Records every accepted job in ``sent`` and hands out ids ``fake-1``, ``fake-2``…

    Failure injection, consumed one per ``send`` call:

    * ``fail_next``: errors raised *before* the job is recorded (the provider refused
      or never saw it), e.g. two ``TransientProviderError`` to fail the next two sends;
    * ``fail_after_accept_next``: errors raised *after* the job is recorded and its ids
      indexed by tag, which simulates an answer lost after OVH accepted the job
      (pair it with ``TransientProviderError(..., uncertain=True)``).

    Receivers listed in ``invalid_receivers`` are reported invalid, as OVH does.
    Faults of the answer only (the SMS is taken either way): ``reverse_ids`` maps
    a job's ids to its receivers in the opposite order; receivers in ``unnamed``
    are left out of the answer altogether.
    State changes happen without any ``await`` in between, so concurrent tasks on one
    event loop cannot interleave inside a send.
    """

    name = "fake"

    def __init__(self) -> None:
        self.sent: list[OutgoingJob] = []
        self.fail_next: list[ProviderError] = []
        self.fail_after_accept_next: list[ProviderError] = []
        self.invalid_receivers: set[str] = set()
        self.reverse_ids = False
        self.unnamed: set[str] = set()
        self.ids_by_tag: dict[str, list[str]] = {}
        self.closed = False
        self.incoming: list[IncomingSms] = []
        self.receivers: dict[str, str] = {}  # provider id -> receiver
        self.reports: dict[str, tuple[int | None, int | None]] = {}  # id -> (dlr, ptt)
        self.blacklist: set[str] = set()
        self.pending: dict[str, str] = {}  # job id -> receiver, still queued (tests fill it)
        self.latency_seconds = 0.0  # simulated network time, spent before any state changes
        self._counter = 0

    async def send(self, job: OutgoingJob) -> JobResult:
        """Record ``job`` and return one sequential id per valid receiver."""
        # Same contract as the OVH provider, so tests catch what OVH would refuse.
        if not job.receivers:
            raise ValueError("an SMS job needs at least one receiver")
        if len(job.tag) > MAX_TAG_LENGTH:
            raise ValueError(f"SMS tag is limited to {MAX_TAG_LENGTH} characters: {job.tag!r}")
        if self.latency_seconds:
            await asyncio.sleep(self.latency_seconds)
        if self.fail_next:
            raise self.fail_next.pop(0)
        self.sent.append(job)
        ids: dict[str, str] = {}
        invalid: list[str] = []
        for receiver in job.receivers:
            if receiver in self.invalid_receivers:
                invalid.append(receiver)
                continue
            self._counter += 1
            ids[receiver] = f"fake-{self._counter}"
            self.receivers[ids[receiver]] = receiver
        self.ids_by_tag.setdefault(job.tag, []).extend(ids.values())
        if self.fail_after_accept_next:
            raise self.fail_after_accept_next.pop(0)
        credits = float(len(ids))
        named = [r for r in ids if r not in self.unnamed]
        answered = [ids[r] for r in named]
        if self.reverse_ids:
            answered.reverse()
        mapped = dict(zip(named, answered, strict=True))
        return JobResult(ids=mapped, invalid_receivers=invalid, credits_removed=credits)

    async def find_by_tag(self, tag: str) -> list[str]:
        """Ids handed out for jobs sent with ``tag``, oldest first."""
        return list(self.ids_by_tag.get(tag, []))

    async def outgoing(self, provider_id: str) -> OutgoingStatus | None:
        """The receiver of a sent id, and the report set in ``reports`` (else pending)."""
        receiver = self.receivers.get(provider_id)
        if receiver is None:
            return None
        dlr, ptt = self.reports.get(provider_id, (None, None))
        tag = next((t for t, ids in self.ids_by_tag.items() if provider_id in ids), None)
        return OutgoingStatus(provider_id, receiver, dlr, ptt, tag)

    async def pending_jobs(self) -> list[str]:
        """Jobs a test put in ``pending``: taken, not run yet."""
        return list(self.pending)

    async def pending_job(self, job_id: str) -> str | None:
        return self.pending.get(job_id)

    async def fetch_incoming(self) -> list[IncomingSms]:
        """What tests put in ``incoming``, as the provider would list it."""
        return list(self.incoming)

    async def delete_incoming(self, provider_id: str) -> None:
        self.incoming = [sms for sms in self.incoming if sms.provider_id != provider_id]

    async def fetch_blacklist(self) -> list[str]:
        return sorted(self.blacklist)

    async def remove_from_blacklist(self, number: str) -> None:
        self.blacklist.discard(number)

    async def aclose(self) -> None:
        """Mark the provider closed (nothing to release)."""
        self.closed = True
