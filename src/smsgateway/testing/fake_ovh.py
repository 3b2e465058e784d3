"""A fake OVHcloud SMS API: signed like the real one, in memory, with fault injection.

Run ``python -m smsgateway.testing.fake_ovh --port 9000 --callback-url URL`` and point the
gateway at it (``SMSGW_OVH_ENDPOINT=http://127.0.0.1:9000/1.0``, same keys). The base URL
is printed on stdout (``--port 0`` picks a free port); logs go to stderr.

Under ``/1.0``, signed and checked exactly like OVH (``/auth/time`` excepted):
``GET /auth/time``, ``POST /sms/{sn}/jobs``, ``GET /sms/{sn}/outgoing[?tag=&receiver=]``,
``GET /sms/{sn}/outgoing/{id}``, ``GET /sms/{sn}/incoming[?sender=]``,
``GET|DELETE /sms/{sn}/incoming/{id}``, ``GET /sms/{sn}/blacklists``. The unsigned control
API under ``/_control`` (faults, records, stats) is described in ``fake_ovh_faults``.

Each accepted SMS gets a delivery report ``dlr_delay`` seconds later: its outgoing record
changes and, with a ``callback_url``, the report is pushed there as
``GET ?id=&dlr=&ptt=&date=&description=&descriptionDlr=&receiver=&sender=&tag=``.
``callback_url`` may list several URLs separated by commas (several gateway processes):
the pushes go to each in turn.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import itertools
import logging
import re
import socket
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import httpx
from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from smsgateway.encoding import analyse
from smsgateway.testing.fake_ovh_faults import (
    API_PREFIX,
    FaultInjector,
    FaultPlan,
    control_router,
    quiet_injected_resets,
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
        """The SMS ``GET /outgoing`` lists: OVH shows a job there once it has left."""
        shown_after = datetime.now(UTC) - timedelta(seconds=self.faults.settings.outgoing_lag_s)
        return {i: sms for i, sms in self.sent.items() if sms.received_at <= shown_after}

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
        report = {
            "ids": [sms.id for sms in batch],
            "validReceivers": valid,
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


# -- requests -------------------------------------------------------------------------


def get_state(request: Request) -> FakeOvhState:
    state: FakeOvhState = request.app.state.fake_ovh
    return state


StateDep = Annotated[FakeOvhState, Depends(get_state)]
SmsId = Annotated[int, Path(alias="id")]


def received_url(request: Request) -> str:
    """The URL exactly as the client put it on the wire: what OVH signatures cover."""
    scope = request.scope
    host = request.headers.get("host")
    if not host:
        server_host, server_port = scope.get("server") or ("localhost", None)
        host = f"{server_host}:{server_port}" if server_port else str(server_host)
    raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
    # Some servers include the query in raw_path; the raw query_string is the truth.
    path = raw_path.split(b"?", 1)[0].decode("latin-1")
    query = bytes(scope.get("query_string", b"")).decode("latin-1")
    return f"{scope['scheme']}://{host}{path}" + (f"?{query}" if query else "")


def expected_signature(
    secret: str, consumer: str, method: str, url: str, body: bytes, timestamp: str
) -> str:
    # Written out again (not imported from the client) so a signing bug cannot hide.
    plain = f"{secret}+{consumer}+{method}+{url}+".encode() + body + f"+{timestamp}".encode()
    return "$1$" + hashlib.sha1(plain, usedforsecurity=False).hexdigest()


async def verify_signature(request: Request, state: StateDep) -> None:
    """Refuse the call as OVH would: unknown keys 403, stale or wrong signature 400."""
    config, headers = state.config, request.headers
    if headers.get("x-ovh-application") != config.application_key:
        raise OvhApiError(
            403, "Client::Forbidden", "This application key is invalid", "INVALID_KEY"
        )
    if headers.get("x-ovh-consumer") != config.consumer_key:
        raise OvhApiError(
            403, "Client::Forbidden", "This credential does not exist", "INVALID_CREDENTIAL"
        )
    timestamp = headers.get("x-ovh-timestamp", "")
    if not timestamp.isdigit() or (
        abs(int(timestamp) - state.server_time()) > config.timestamp_window_s
    ):
        raise OvhApiError(400, "Client::BadRequest", "Query out of time", "QUERY_TIME_OUT")
    expected = expected_signature(
        config.application_secret,
        config.consumer_key,
        request.method,
        received_url(request),
        await request.body(),
        timestamp,
    )
    if not hmac.compare_digest(headers.get("x-ovh-signature", "").encode(), expected.encode()):
        raise OvhApiError(400, "Client::BadRequest", "Invalid signature", "INVALID_SIGNATURE")


def known_service(state: StateDep, service: Annotated[str, Path(alias="serviceName")]) -> None:
    if service != state.config.service_name:
        raise OvhApiError(
            404,
            "Client::NotFound",
            f"The requested object (serviceName = {service}) does not exist",
        )


unsigned = APIRouter(prefix="/1.0")
sms_api = APIRouter(
    prefix="/1.0/sms/{serviceName}",
    dependencies=[Depends(verify_signature), Depends(known_service)],
)


@unsigned.get("/auth/time")
async def auth_time(state: StateDep) -> Response:
    return Response(str(state.server_time()), media_type="application/json")


@sms_api.post("/jobs")
async def create_job(request: Request, state: StateDep) -> dict[str, Any]:
    report, batch = state.accept_job(await request.body())
    if state.faults.dlr_fault(state.faults.settings.dlr.before_answer):
        await asyncio.gather(*(state.report(s, state.config.dlr, state.config.ptt) for s in batch))
    else:
        state.schedule_reports(batch)
    return report


@sms_api.get("/outgoing")
async def list_outgoing(
    state: StateDep,
    tag: str | None = None,
    receiver: str | None = None,
    delivery_receipt: Annotated[int | None, Query(alias="deliveryReceipt")] = None,
) -> list[int]:
    return [
        sms.id
        for sms in state.visible_outgoing().values()
        if (tag is None or sms.job.tag == tag)
        and (receiver is None or sms.receiver == receiver)
        and (delivery_receipt is None or sms.delivery_receipt == delivery_receipt)
    ]


@sms_api.get("/outgoing/{id}")
async def get_outgoing(state: StateDep, sms_id: SmsId) -> dict[str, Any]:
    sent = state.visible_outgoing().get(sms_id)
    if sent is None:
        raise not_found(sms_id)
    return sent.outgoing()


@sms_api.get("/incoming")
async def list_incoming(state: StateDep, sender: str | None = None) -> list[int]:
    return [i for i, sms in state.incoming.items() if sender is None or sms["sender"] == sender]


@sms_api.get("/incoming/{id}")
async def get_incoming(state: StateDep, sms_id: SmsId) -> dict[str, Any]:
    if sms_id not in state.incoming:
        raise not_found(sms_id)
    return state.incoming[sms_id]


@sms_api.delete("/incoming/{id}")
async def delete_incoming(state: StateDep, sms_id: SmsId) -> None:
    if state.incoming.pop(sms_id, None) is None:
        raise not_found(sms_id)


@sms_api.get("/blacklists")
async def list_blacklists(state: StateDep) -> list[str]:
    return list(state.blacklist)


def create_fake_ovh(
    config: FakeOvhConfig | None = None, *, state: FakeOvhState | None = None
) -> FastAPI:
    """The fake's ASGI app. Pass ``state`` to inspect or drive it from the same loop."""
    current = state or FakeOvhState(config or FakeOvhConfig())

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        await current.aclose()

    app = FastAPI(title="fake OVHcloud SMS API", lifespan=lifespan, openapi_url=None)
    app.state.fake_ovh = current
    app.include_router(unsigned)
    app.include_router(sms_api)
    app.include_router(control_router(current))

    @app.exception_handler(OvhApiError)
    async def _ovh_error(_request: Request, exc: OvhApiError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        if request.url.path.startswith(API_PREFIX):
            return bad_request(f"Invalid parameters: {exc.errors()[0].get('loc')}").response()
        return await request_validation_exception_handler(request, exc)

    app.add_middleware(FaultInjector, host=current)
    quiet_injected_resets()
    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m smsgateway.testing.fake_ovh")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000, help="0 picks a free port")
    parser.add_argument("--log-level", default="info")
    for option in fields(FakeOvhConfig):  # --application-key, --callback-url, --dlr-delay...
        kind = str if option.default is None else type(option.default)
        parser.add_argument("--" + option.name.replace("_", "-"), type=kind, default=option.default)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    config = FakeOvhConfig(
        **{option.name: getattr(args, option.name) for option in fields(FakeOvhConfig)}
    )
    import uvicorn

    # Bind first so ``--port 0`` can report the port it got before serving.
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    port = sock.getsockname()[1]
    host = f"[{args.host}]" if family == socket.AF_INET6 else args.host
    print(f"http://{host}:{port}/1.0", flush=True)
    server = uvicorn.Server(
        uvicorn.Config(
            create_fake_ovh(config), log_level=args.log_level, timeout_graceful_shutdown=2
        )
    )
    server.run(sockets=[sock])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
