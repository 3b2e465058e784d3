"""OVHcloud's pushes of replies (``/incoming``) and STOP requests (``/stop``).

OVHcloud does not document these pushes' parameters, so several usual names
are accepted for each field and unknown names are logged (names only, never
values). Polling (``replies.poller``) reads the same SMS through the API;
either way each SMS is stored once.
"""

from __future__ import annotations

import hashlib
import logging

from fastapi import APIRouter, Request

from smsgateway.callbacks.endpoints import (
    CALLBACK_RESPONSES,
    CallbackAck,
    TokenChecked,
    callback_params,
)
from smsgateway.deps import RuntimeDep, SessionDep
from smsgateway.errors import Problem
from smsgateway.numbers import InvalidNumber, normalise
from smsgateway.providers.base import IncomingSms
from smsgateway.replies.service import HASH_ID_PREFIX, REPLY_REGION, handle_incoming, opt_out

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/providers/ovh/{token}", tags=["provider callbacks"])

_ID = ("id", "smsId", "incomingId", "messageId", "moId")
_SENDER = ("sender", "from", "msisdn", "phone", "number", "senderNumber")
_TEXT = ("message", "text", "body", "msg", "content")
_DATE = ("creationDatetime", "date", "datetime", "receivedAt", "timestamp")
_KNOWN = {*_ID, *_SENDER, *_TEXT, *_DATE, "receiver", "tag", "credits", "service", "to"}


def _first(params: dict[str, str], names: tuple[str, ...]) -> str:
    for name in names:
        value = params.get(name, "").strip()
        if value:
            return value
    return ""


def _log_unknown(params: dict[str, str], path: str) -> None:
    unknown = sorted(set(params) - _KNOWN)
    if unknown:
        log.info("%s callback with unknown parameters: %s", path, ", ".join(unknown[:20]))


def _missing(field: str) -> Problem:
    return Problem(
        422,
        "malformed-callback",
        "Malformed callback",
        f"Parameter '{field}' is missing.",
        errors=[{"field": field, "message": "missing"}],
    )


@router.get(
    "/incoming",
    response_model=CallbackAck,
    responses=CALLBACK_RESPONSES,
    summary="Reply SMS pushed by OVHcloud (query string)",
    operation_id="ovh_incoming_get",
)
@router.post(
    "/incoming",
    response_model=CallbackAck,
    responses=CALLBACK_RESPONSES,
    summary="Reply SMS pushed by OVHcloud (query, form or JSON)",
    operation_id="ovh_incoming_post",
)
async def incoming(
    _: TokenChecked, request: Request, session: SessionDep, runtime: RuntimeDep
) -> CallbackAck:
    """Store a reply once and act on it (verification, STOP/START, booking answers)."""
    params = await callback_params(request)
    _log_unknown(params, "incoming")
    sender = _first(params, _SENDER)
    if not sender:
        raise _missing("sender")
    text = _first(params, _TEXT)
    received = _first(params, _DATE) or None
    provider_id = _first(params, _ID)
    if not provider_id:
        # Without an id, the same push repeated must still be stored once.
        digest = hashlib.sha256(f"{sender}|{text}|{received}".encode()).hexdigest()
        provider_id = HASH_ID_PREFIX + digest[:40]
    sms = IncomingSms(
        provider_id=provider_id[:80], sender=sender[:32], text=text, received_at=received
    )
    # Labelled like the poller labels it, so push and poll dedupe against each other.
    outcome = await handle_incoming(session, runtime, sms, provider=runtime.provider.name)
    await session.commit()
    runtime.wakeup.set()
    return CallbackAck(status=outcome or "duplicate", duplicate=outcome is None)


@router.get(
    "/stop",
    response_model=CallbackAck,
    responses=CALLBACK_RESPONSES,
    summary="STOP received by OVHcloud (query string)",
    operation_id="ovh_stop_get",
)
@router.post(
    "/stop",
    response_model=CallbackAck,
    responses=CALLBACK_RESPONSES,
    summary="STOP received by OVHcloud (query, form or JSON)",
    operation_id="ovh_stop_post",
)
async def stop(
    _: TokenChecked, request: Request, session: SessionDep, runtime: RuntimeDep
) -> CallbackAck:
    """Opt the number out for every client. OVHcloud answers the user itself here."""
    params = await callback_params(request)
    _log_unknown(params, "stop")
    raw = _first(params, _SENDER)
    if not raw:
        raise _missing("sender")
    try:
        number = normalise(raw, runtime.settings.locale.default_region or REPLY_REGION).e164
    except InvalidNumber:
        raise Problem(
            422,
            "malformed-callback",
            "Malformed callback",
            "Parameter 'sender' is not a valid number.",
            errors=[{"field": "sender", "message": "invalid number"}],
        ) from None
    changed = await opt_out(session, runtime, number, source="provider_stop", confirm=False)
    await session.commit()
    return CallbackAck(status="opted_out", duplicate=not changed)
