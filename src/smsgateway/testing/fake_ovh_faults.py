"""Fault injection and the control API of the fake OVHcloud API (``/_control``, unsigned).

==============================  ==================================================================
``GET|POST /_control/faults``   read or replace the fault plan (:class:`FaultSettings`)
``GET /_control/sent``          every accepted SMS: its outgoing record plus the job's fields
                                (``noStopClause``, ``senderForResponse``, ``priority``...)
``GET /_control/stats``         ``calls``, ``job_calls``, ``accepted``, ``duplicates`` (tagged
                                (tag, receiver) pairs accepted more than once), ``faults`` by
                                kind, ``dlr_pushed``, ``dlr_failed``
``POST /_control/incoming``     ``{"sender", "message"[, "tag"]}`` adds an incoming SMS
``POST /_control/blacklists``   ``{"number"}``: later jobs list it in ``invalidReceivers``
``POST /_control/dlr``          ``{"id", "dlr", "ptt"}`` applies and pushes one report now
``POST /_control/reset``        forgets SMS, faults and counters (ids keep increasing)
==============================  ==================================================================

A :class:`FaultPlan` decides, call by call, whether a signed API call misbehaves;
:class:`FaultInjector` is the ASGI wrapper that carries the decision out. Faults hit
``POST /sms/{sn}/jobs`` only, unless ``scope`` is ``"all"`` (every signed call);
``GET /auth/time`` is never faulted. A queued fault (``next``, where ``"ok"`` means no
fault) wins over a random one (``rate``, ``kinds``, ``seed``). ``latency_ms`` slows every
call. ``pending_s`` keeps an accepted SMS in ``GET /jobs`` (a job OVH has not run yet)
for a while; ``outgoing_lag_s`` then hides it from ``GET /outgoing`` for a while more, as
OVH lists a job some time after it has run. ``id_order`` ``"reversed"`` answers a job's
``ids`` in the opposite order of its ``validReceivers``; ``omit_receiver`` leaves that
share of a job's receivers out of both ``validReceivers`` and ``invalidReceivers``
(the SMS is still sent). Delivery reports misbehave as :class:`DlrFaults` says.

========================  =================================================================
kind                      what the client sees
========================  =================================================================
``latency``               a slow but normal answer (``spike_ms`` more than usual)
``timeout``               no answer for ``timeout_sleep_s`` (then a 504 if still connected);
                          the SMS is not recorded
``reset``                 a 200 status line whose body stops short of its Content-Length,
                          then the connection closes: httpx raises ``RemoteProtocolError``.
                          In process (``httpx.ASGITransport``) the fake raises
                          :class:`InjectedConnectionReset`, an ``httpx.RemoteProtocolError``,
                          which the transport passes through. Nothing is recorded.
``429``                   ``429 Too Many Requests`` with ``Retry-After: retry_after``
``500``                   ``500 Internal Server Error``; nothing is recorded
``lost_response``         the call is processed (SMS recorded, DLR scheduled), then the
                          answer is lost as a ``reset`` or, with ``lost_as="500"``, a 500
========================  =================================================================
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections import Counter, deque
from typing import TYPE_CHECKING, Any, Literal

import httpx
from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict, Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:  # the state imports this module
    from smsgateway.testing.fake_ovh_state import FakeOvhState

log = logging.getLogger(__name__)

FaultKind = Literal["latency", "timeout", "reset", "429", "500", "lost_response"]
QueuedFault = Literal["ok", "latency", "timeout", "reset", "429", "500", "lost_response"]

API_PREFIX = "/1.0/"
_UNSIGNED_PATHS = frozenset({"/1.0/auth/time"})


class DlrFaults(BaseModel):
    """How delivery reports misbehave."""

    model_config = ConfigDict(extra="forbid")

    duplicate: bool = Field(default=False, description="push every report twice")
    out_of_order: bool = Field(
        default=False, description="after the final report, push a stale 'pending' one"
    )
    before_answer: bool = Field(
        default=False, description="push the reports before answering the jobs call"
    )
    late_s: float = Field(default=0.0, ge=0, description="extra delay before the reports")
    rate: float = Field(
        default=1.0,
        ge=0,
        le=1,
        description="chance that each fault above hits a given SMS's reports (drawn per SMS)",
    )


class FaultSettings(BaseModel):
    """The body of ``POST /_control/faults``; it replaces the whole plan."""

    model_config = ConfigDict(extra="forbid")

    latency_ms: int = Field(default=0, ge=0, description="added to every API call")
    rate: float = Field(default=0.0, ge=0, le=1, description="chance that a call is faulted")
    kinds: list[FaultKind] = Field(default_factory=list, description="drawn uniformly")
    next: list[QueuedFault] = Field(
        default_factory=list, description="consumed one per faultable call, before any draw"
    )
    retry_after: int | None = Field(default=1, ge=0, description="Retry-After of a 429")
    seed: int | None = None
    scope: Literal["jobs", "all"] = "jobs"
    lost_as: Literal["reset", "500"] = "reset"
    spike_ms: int = Field(default=1000, ge=0, description="extra delay of a 'latency' fault")
    timeout_sleep_s: float = Field(default=15.0, gt=0, description="silence of a 'timeout'")
    pending_s: float = Field(
        default=0.0, ge=0, description="accepted SMS stay pending jobs (GET /jobs) this long"
    )
    outgoing_lag_s: float = Field(
        default=0.0,
        ge=0,
        description="a job that has run shows in GET /outgoing only this late",
    )
    id_order: Literal["receivers", "reversed"] = "receivers"
    omit_receiver: float = Field(
        default=0.0, ge=0, le=1, description="chance a receiver is left out of the answer"
    )
    dlr: DlrFaults = Field(default_factory=DlrFaults)


class FaultPlan:
    """The current settings, the queue left and the faults injected so far."""

    def __init__(self, settings: FaultSettings | None = None) -> None:
        self.injected: Counter[str] = Counter()
        self.configure(settings or FaultSettings())

    def configure(self, settings: FaultSettings) -> None:
        self.settings = settings
        self._queue: deque[QueuedFault] = deque(settings.next)
        # Reproducible chaos, not cryptography.
        self._random = random.Random(settings.seed)  # noqa: S311

    def draw(self, *, job_call: bool) -> FaultKind | None:
        """The fault for this call, or ``None`` to answer normally."""
        if not job_call and self.settings.scope == "jobs":
            return None
        if self._queue:
            queued = self._queue.popleft()
            return None if queued == "ok" else queued
        if self.settings.kinds and self._random.random() < self.settings.rate:
            return self._random.choice(self.settings.kinds)
        return None

    def omits(self) -> bool:
        """Whether to leave one receiver out of a job's answer (``omit_receiver``)."""
        share = self.settings.omit_receiver
        return share > 0 and self._random.random() < share

    def dlr_fault(self, enabled: bool | float) -> bool:
        """Whether a delivery-report fault that is ``enabled`` hits this SMS."""
        if not enabled:
            return False
        rate = self.settings.dlr.rate
        return rate >= 1 or self._random.random() < rate

    def describe(self) -> dict[str, object]:
        """Settings as given, with ``next`` showing what is still queued."""
        return {**self.settings.model_dump(mode="json"), "next": list(self._queue)}


class InjectedConnectionReset(httpx.RemoteProtocolError):
    """Aborts an answer on purpose; uvicorn then closes the connection."""


class HideInjectedResets(logging.Filter):
    """Keeps uvicorn from logging a traceback for every reset the fake injects."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not isinstance(error, InjectedConnectionReset)


def quiet_injected_resets() -> None:
    """Install :class:`HideInjectedResets` on uvicorn's error logger (idempotent)."""
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, HideInjectedResets) for f in logger.filters):
        logger.addFilter(HideInjectedResets())


class FaultInjector:
    """ASGI wrapper applying the plan of ``host`` to calls under ``/1.0/``."""

    def __init__(self, app: ASGIApp, host: FakeOvhState) -> None:
        self.app = app
        self.host = host

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", ""))
        if scope["type"] != "http" or not path.startswith(API_PREFIX):
            await self.app(scope, receive, send)
            return
        job_call = scope["method"] == "POST" and path.endswith("/jobs")
        self.host.count_call(job_call=job_call)
        plan = self.host.faults
        settings = plan.settings
        if settings.latency_ms:
            await asyncio.sleep(settings.latency_ms / 1000)
        kind = None if path in _UNSIGNED_PATHS else plan.draw(job_call=job_call)
        if kind is None:
            await self.app(scope, receive, send)
            return
        plan.injected[kind] += 1
        log.info("injecting fault %r on %s %s", kind, scope["method"], path)
        if kind == "latency":
            await asyncio.sleep(settings.spike_ms / 1000)
            await self.app(scope, receive, send)
        elif kind == "timeout":
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(_disconnected(receive), settings.timeout_sleep_s)
                return  # the client gave up: nobody to answer
            await _send_error(send, 504, "Server::GatewayTimeout", "Gateway timeout")
        elif kind == "reset":
            await _read_body(receive)
            await _break_connection(send)
        elif kind == "429":
            retry = {} if settings.retry_after is None else {"retry-after": settings.retry_after}
            await _send_error(
                send, 429, "Client::TooManyRequests", "Too many requests", headers=retry
            )
        elif kind == "500":
            await _send_error(send, 500, "Server::InternalServerError", "Internal server error")
        else:  # lost_response: do the work, then lose the answer
            await self.app(scope, receive, _discard)
            if settings.lost_as == "500":
                await _send_error(send, 500, "Server::InternalServerError", "Internal server error")
            else:
                await _break_connection(send)


async def _read_body(receive: Receive) -> None:
    # Closing with request bytes still unread would make the kernel answer with a RST
    # (a ReadError or WriteError in the client) instead of the end of a short answer.
    while (await receive()).get("more_body", False):
        pass


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _discard(_message: Message) -> None:
    return None


async def _send_error(
    send: Send,
    status: int,
    error_class: str,
    message: str,
    *,
    headers: dict[str, int] | None = None,
) -> None:
    body = json.dumps({"class": error_class, "message": message}).encode()
    raw_headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *((name.encode(), str(value).encode()) for name, value in (headers or {}).items()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


async def _break_connection(send: Send) -> None:
    # A promised body that never comes is the one way an ASGI app can make a real
    # client see a dropped connection: uvicorn closes the socket once the app fails
    # mid-answer, and the client raises a transport error instead of reading a status.
    start = b'{"ids":['
    headers = [(b"content-type", b"application/json"), (b"content-length", b"4096")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": start, "more_body": True})
    raise InjectedConnectionReset("fake OVH dropped the connection in the middle of its answer")


class IncomingIn(BaseModel):
    sender: str
    message: str
    tag: str = ""


class BlacklistIn(BaseModel):
    number: str


class ReportIn(BaseModel):
    id: int
    dlr: int = 1
    ptt: int = 4


def control_router(state: FakeOvhState) -> APIRouter:
    """The ``/_control`` routes (table in the module docstring), bound to ``state``."""
    router = APIRouter(prefix="/_control")

    @router.get("/faults")
    async def get_faults() -> dict[str, object]:
        return state.faults.describe()

    @router.post("/faults")
    async def set_faults(settings: FaultSettings) -> dict[str, object]:
        state.faults.configure(settings)
        return state.faults.describe()

    @router.get("/sent")
    async def list_sent() -> list[dict[str, Any]]:
        return [sms.record() for sms in state.sent.values()]

    @router.get("/stats")
    async def get_stats() -> dict[str, Any]:
        return state.stats()

    @router.post("/incoming", status_code=201)
    async def add_incoming(body: IncomingIn) -> dict[str, Any]:
        return state.add_incoming(body.sender, body.message, body.tag)

    @router.post("/blacklists", status_code=201)
    async def add_blacklisted(body: BlacklistIn) -> list[str]:
        if body.number not in state.blacklist:
            state.blacklist.append(body.number)
        return state.blacklist

    @router.post("/dlr")
    async def push_report(body: ReportIn) -> dict[str, Any]:
        sms = state.sent.get(body.id)
        if sms is None:
            raise HTTPException(404, f"no SMS with id {body.id}")
        await state.report(sms, body.dlr, body.ptt)
        return sms.record()

    @router.post("/reset")
    async def reset() -> dict[str, Any]:
        state.reset()
        return state.stats()

    return router
