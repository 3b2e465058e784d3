"""A fake OVHcloud SMS API: signed like the real one, in memory, with fault injection.

Run ``python -m smsgateway.testing.fake_ovh --port 9000 --callback-url URL`` and point the
gateway at it (``SMSGW_OVH_ENDPOINT=http://127.0.0.1:9000/1.0``, same keys). The base URL
is printed on stdout (``--port 0`` picks a free port); logs go to stderr.

Under ``/1.0``, signed and checked exactly like OVH (``/auth/time`` excepted):
``GET /auth/time``, ``POST|GET /sms/{sn}/jobs``, ``GET /sms/{sn}/jobs/{id}``,
``GET /sms/{sn}/outgoing[?tag=&receiver=]``,
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
import logging
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import fields
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from smsgateway.testing.fake_ovh_faults import (
    API_PREFIX,
    FaultInjector,
    control_router,
    quiet_injected_resets,
)
from smsgateway.testing.fake_ovh_state import (
    FakeOvhConfig,
    FakeOvhState,
    OvhApiError,
    bad_request,
    not_found,
)

log = logging.getLogger(__name__)

JOB_FIELDS = (
    "id",
    "receiver",
    "sender",
    "message",
    "credits",
    "numberOfSms",
    "messageLength",
    "differedDelivery",
    "creationDatetime",
    "deliveryReceipt",
    "ptt",
)

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


@sms_api.get("/jobs")
async def list_jobs(state: StateDep) -> list[int]:
    return list(state.pending_jobs())


@sms_api.get("/jobs/{id}")
async def get_job(state: StateDep, sms_id: SmsId) -> dict[str, Any]:
    pending = state.pending_jobs().get(sms_id)
    if pending is None:
        raise not_found(sms_id)
    # OVH's ``sms.Job``: no tag, and never ``deliveryReceipt`` other than 0.
    shown = pending.outgoing()
    return {key: shown[key] for key in JOB_FIELDS}


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
