"""The fake OVHcloud API's state: its configuration, the SMS it accepted, their reports.

``fake_ovh`` serves this over HTTP; tests may drive a ``FakeOvhState`` directly.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import httpx
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from smsgateway.encoding import analyse
from smsgateway.testing.fake_ovh_faults import (
    FaultPlan,
)

log = logging.getLogger(__name__)

E164 = re.compile(r"^\+\d{8,15}$")
MAX_TAG_LENGTH = 20
DLR_TEXT = {0: "Pending", 1: "Success", 2: "Failed", 4: "Pending", 8: "Buffered", 16: "Error"}
PTT_TEXT = {3: "Accepted by the operator", 4: "Delivered", 5: "Undelivered", 8: "Expired"}
STALE_REPORT = (4, 3)  # "pending, accepted by the operator": what out_of_order sends last


@dataclass(frozen=True, slots=True)
class FakeOvhConfig:
    """What a real OVH account would hold: keys, one SMS service, the DLR callback."""

    application_key: str = "fake-application-key"
    application_secret: str = "fake-application-secret"  # noqa: S105 - a public test value
    consumer_key: str = "fake-consumer-key"
    service_name: str = "sms-test-1"
    callback_url: str | None = None
    dlr_delay: float = 0.2
    dlr: int = 1
    ptt: int = 4
    short_number: str = "36111"  # the sender shown for ``senderForResponse``
    first_id: int = 0  # 0: from the clock, so ids stay unique when the fake restarts
    timestamp_window_s: int = 180
    clock_offset_s: int = 0  # the fake's clock minus the real one


class OvhApiError(Exception):
    """An error answered in OVH's shape: ``{"class", "message", "errorCode"}``."""

    def __init__(
        self, status: int, error_class: str, message: str, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.error_class, self.message, self.code = status, error_class, message, code

    def response(self) -> JSONResponse:
        body: dict[str, Any] = {"class": self.error_class, "message": self.message}
        if self.code:
            body["errorCode"] = self.code
        return JSONResponse(body, status_code=self.status)


def bad_request(message: str) -> OvhApiError:
    return OvhApiError(400, "Client::BadRequest", message)


def not_found(object_id: object) -> OvhApiError:
    message = f"The requested object (id = {object_id}) does not exist"
    return OvhApiError(404, "Client::NotFound", message)


class JobIn(BaseModel):
    """The fields of ``POST /sms/{sn}/jobs`` the fake understands (OVH's own names)."""

    model_config = ConfigDict(strict=True)

    message: str = Field(min_length=1)
    receivers: list[str] = Field(min_length=1)
    tag: str = Field(default="", max_length=MAX_TAG_LENGTH)
    sender: str | None = Field(default=None, min_length=1)
    senderForResponse: bool = False
    noStopClause: bool = False
    priority: Literal["high", "low", "medium", "veryLow"] = "high"
    validityPeriod: int | None = Field(default=None, ge=0)
    differedPeriod: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _has_sender(self) -> JobIn:
        if self.sender is None and not self.senderForResponse:
            raise ValueError("a sender or senderForResponse is required")
        return self


@dataclass(slots=True)
class SentSms:
    """One accepted SMS: its job, receiver and delivery state."""

    id: int
    receiver: str
    job: JobIn
    parts: int
    received_at: datetime
    shown_sender: str
    delivery_receipt: int = 0
    ptt: int = 0
    delivered_at: datetime | None = None

    def outgoing(self) -> dict[str, Any]:
        """As ``GET /sms/{sn}/outgoing/{id}`` shows it."""
        return {
            "id": self.id,
            "receiver": self.receiver,
            "sender": self.shown_sender,
            "message": self.job.message,
            "tag": self.job.tag,
            "deliveryReceipt": self.delivery_receipt,
            "ptt": self.ptt,
            "credits": float(self.parts),
            "numberOfSms": self.parts,
            "messageLength": len(self.job.message),
            "differedDelivery": self.job.differedPeriod or 0,
            "creationDatetime": _iso(self.received_at),
            "sentAt": _iso(self.received_at),
            "deliveredAt": _iso(self.delivered_at) if self.delivered_at else None,
            "batchID": None,
            "messageID": None,
        }

    def record(self) -> dict[str, Any]:
        """``outgoing()`` plus what the job asked for (``noStopClause``, ``priority``...)."""
        return {**self.job.model_dump(exclude={"receivers"}), **self.outgoing()}


class FakeOvhState:
    """Everything the fake remembers. Only touched from the server's event loop.

    ``dlr_http`` is the client used to push delivery reports (one is created on first
    use when not given); tests pass one with a transport into the gateway app.
    """

    def __init__(self, config: FakeOvhConfig, *, dlr_http: httpx.AsyncClient | None = None) -> None:
        self.config = config
        self._dlr_http = dlr_http
        self._owns_http = dlr_http is None
        first_id = config.first_id or int(time.time() * 1000)
        urls = [url.strip() for url in (config.callback_url or "").split(",") if url.strip()]
        self._callback_urls = itertools.cycle(urls) if urls else None
        self._ids = itertools.count(first_id)
        self._incoming_ids = itertools.count(first_id)
        self._tasks: set[asyncio.Task[None]] = set()
        self.reset()

    def reset(self) -> None:
        for task in self._tasks:
            task.cancel()
        self._tasks.clear()
        self.faults = FaultPlan()
        self.sent: dict[int, SentSms] = {}
        self.incoming: dict[int, dict[str, Any]] = {}
        self.blacklist: list[str] = []
        self.accepted_per_key: Counter[tuple[str, str]] = Counter()
        self.counters: Counter[str] = Counter()

    def visible_outgoing(self) -> dict[int, SentSms]:
        """The SMS ``GET /outgoing`` lists: OVH shows a job there some time after it ran."""
        settings = self.faults.settings
        lag = timedelta(seconds=settings.pending_s + settings.outgoing_lag_s)
        shown_after = datetime.now(UTC) - lag
        return {i: sms for i, sms in self.sent.items() if sms.received_at <= shown_after}

    def pending_jobs(self) -> dict[int, SentSms]:
        """The SMS ``GET /jobs`` lists: taken, and not run yet (``pending_s``)."""
        run_before = datetime.now(UTC) - timedelta(seconds=self.faults.settings.pending_s)
        return {i: sms for i, sms in self.sent.items() if sms.received_at > run_before}

    def count_call(self, *, job_call: bool) -> None:
        self.counters["calls"] += 1
        if job_call:
            self.counters["job_calls"] += 1

    def server_time(self) -> int:
        return int(time.time()) + self.config.clock_offset_s

    def stats(self) -> dict[str, Any]:
        return {
            "calls": self.counters["calls"],
            "job_calls": self.counters["job_calls"],
            "accepted": len(self.sent),
            # Tagless SMS cannot be told apart from legitimate repeats, so they never count.
            "duplicates": sum(1 for (tag, _), n in self.accepted_per_key.items() if tag and n > 1),
            "faults": dict(self.faults.injected),
            "dlr_pushed": self.counters["dlr_pushed"],
            "dlr_failed": self.counters["dlr_failed"],
        }

    def accept_job(self, body: bytes) -> tuple[dict[str, Any], list[SentSms]]:
        """Validate a ``POST /jobs`` body, record its SMS and build the sending report."""
        try:
            job = JobIn.model_validate_json(body or b"null")
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(part) for part in error["loc"]) or "body"
            raise bad_request(f"[{where}] {error['msg']}") from None
        parts = analyse(job.message, stop_clause=not job.noStopClause).segments
        now = datetime.now(UTC)
        valid = [r for r in job.receivers if E164.match(r) and r not in self.blacklist]
        batch = [
            SentSms(
                id=next(self._ids),
                receiver=receiver,
                job=job,
                parts=parts,
                received_at=now,
                shown_sender=job.sender or self.config.short_number,
            )
            for receiver in valid
        ]
        for sms in batch:
            self.sent[sms.id] = sms
            self.accepted_per_key[(job.tag, sms.receiver)] += 1
        invalid = [r for r in job.receivers if r not in valid]
        log.info("job accepted: %d SMS, %d invalid, tag %r", len(batch), len(invalid), job.tag)
        # Faults of the answer only: every SMS of ``batch`` was taken.
        answered = [sms for sms in batch if not self.faults.omits()]
        ids = [sms.id for sms in answered]
        if self.faults.settings.id_order == "reversed":
            ids.reverse()
        report = {
            "ids": ids,
            "validReceivers": [sms.receiver for sms in answered],
            "invalidReceivers": invalid,
            "totalCreditsRemoved": float(parts * len(batch)),
            "tag": job.tag,
        }
        return report, batch

    def add_incoming(self, sender: str, message: str, tag: str = "") -> dict[str, Any]:
        created = datetime.now(UTC)
        incoming_id = next(self._incoming_ids)
        self.incoming[incoming_id] = {
            "id": incoming_id,
            "sender": sender,
            "message": message,
            "tag": tag,
            "credits": 0.0,
            "creationDatetime": _iso(created),
        }
        return self.incoming[incoming_id]

    # -- delivery reports ---------------------------------------------------------

    def schedule_reports(self, batch: Iterable[SentSms]) -> None:
        late_s = self.faults.settings.dlr.late_s
        for sms in batch:
            delay = self.config.dlr_delay + (late_s if self.faults.dlr_fault(late_s) else 0.0)
            task = asyncio.create_task(self._report_later(sms, delay))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _report_later(self, sms: SentSms, delay: float) -> None:
        await asyncio.sleep(delay)
        await self.report(sms, self.config.dlr, self.config.ptt)

    async def report(self, sms: SentSms, dlr: int, ptt: int) -> None:
        """Apply a report to ``sms`` and push it (and any faulty extras) to the callback."""
        sms.delivery_receipt, sms.ptt = dlr, ptt
        now = datetime.now(UTC)
        if dlr == 1:
            sms.delivered_at = now
        faults = self.faults.settings.dlr
        pushes = [(dlr, ptt, now)]
        if self.faults.dlr_fault(faults.out_of_order):
            pushes.append((*STALE_REPORT, now - timedelta(seconds=1)))
        copies = 2 if self.faults.dlr_fault(faults.duplicate) else 1
        for code, ptt_code, when in pushes:
            for _ in range(copies):
                await self._push(sms, code, ptt_code, when)

    async def _push(self, sms: SentSms, dlr: int, ptt: int, when: datetime) -> None:
        if self._callback_urls is None:
            return
        url = next(self._callback_urls)
        params = {
            "id": str(sms.id),
            "dlr": str(dlr),
            "ptt": str(ptt),
            "date": _iso(when),
            "description": PTT_TEXT.get(ptt, f"ptt {ptt}"),
            "descriptionDlr": DLR_TEXT.get(dlr, f"dlr {dlr}"),
            "receiver": sms.receiver,
            "sender": sms.shown_sender,
            "tag": sms.job.tag,
        }
        if self._dlr_http is None:
            self._dlr_http = httpx.AsyncClient(timeout=5.0)
        try:
            response = await self._dlr_http.get(url, params=params)
        except httpx.HTTPError as exc:
            self.counters["dlr_failed"] += 1
            log.warning("DLR push for SMS %s failed: %s", sms.id, type(exc).__name__)
            return
        if response.is_success:
            self.counters["dlr_pushed"] += 1
        else:
            self.counters["dlr_failed"] += 1
            log.warning("DLR push for SMS %s answered HTTP %s", sms.id, response.status_code)

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._owns_http and self._dlr_http is not None:
            await self._dlr_http.aclose()
            self._dlr_http = None


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")
