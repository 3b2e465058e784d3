"""The URLs OVHcloud calls. The secret token in the path authenticates it."""

from __future__ import annotations

import hmac
import json
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel

from smsgateway.deps import RuntimeDep, SessionDep
from smsgateway.errors import PROBLEM_JSON, Problem
from smsgateway.messages.reports import ReportIn, record_report, rematch_report

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/providers/ovh/{token}", tags=["provider callbacks"])

_KNOWN_DLR_PARAMS = {
    "id",
    "dlr",
    "ptt",
    "date",
    "description",
    "descriptionDlr",
    "sender",
    "receiver",
    "tag",
    "smsId",
    "data",
}
_MAX_PARAM = 512


class CallbackAck(BaseModel):
    status: str
    duplicate: bool = False


async def check_token(token: str, runtime: RuntimeDep) -> None:
    secret = runtime.settings.api.callback_token
    expected = secret.get_secret_value() if secret else ""
    # Unknown and wrong tokens look the same: a 404, as if the URL did not exist.
    # An unset or empty token never matches.
    if not expected or not hmac.compare_digest(token.encode(), expected.encode()):
        raise Problem(404, "not-found", "Not found")


TokenChecked = Annotated[None, Depends(check_token)]


async def callback_params(request: Request) -> dict[str, str]:
    """Parameters from the query string and, for POST, a form or JSON body."""
    params = {k: v for k, v in request.query_params.items()}
    if request.method == "POST":
        content_type = request.headers.get("content-type", "")
        if "json" in content_type:
            try:
                body: Any = json.loads(await request.body() or b"{}")
            except ValueError as exc:
                raise Problem(
                    400, "malformed-callback", "Malformed callback", "The body is not valid JSON."
                ) from exc
            if isinstance(body, dict):
                # A null is an absent parameter, not the text "None".
                params.update({str(k): str(v) for k, v in body.items() if v is not None})
        elif "form" in content_type:
            form = await request.form()
            params.update({k: v for k, v in form.items() if isinstance(v, str)})
    return {k[:64]: v[:_MAX_PARAM] for k, v in params.items()}


def _int_param(params: dict[str, str], name: str, *, required: bool) -> int | None:
    raw = params.get(name, "").strip()
    if not raw:
        if required:
            raise Problem(
                422,
                "malformed-callback",
                "Malformed callback",
                f"Parameter '{name}' is missing.",
                errors=[{"field": name, "message": "missing"}],
            )
        return None
    try:
        value = int(raw)
    except ValueError:
        value = None
    # The codes are stored in 32-bit columns: anything wider is not a code either.
    if value is None or not -(2**31) <= value < 2**31:
        raise Problem(
            422,
            "malformed-callback",
            "Malformed callback",
            f"Parameter '{name}' must be an integer.",
            errors=[{"field": name, "message": "not an integer"}],
        )
    return value


CALLBACK_RESPONSES: dict[int | str, dict[str, Any]] = {
    404: {"description": "Unknown token", "content": {PROBLEM_JSON: {}}},
    422: {"description": "Missing or malformed parameter", "content": {PROBLEM_JSON: {}}},
}


@router.get(
    "/dlr",
    response_model=CallbackAck,
    responses=CALLBACK_RESPONSES,
    summary="Delivery report from OVHcloud (query string)",
    operation_id="ovh_delivery_report_get",
)
@router.post(
    "/dlr",
    response_model=CallbackAck,
    responses=CALLBACK_RESPONSES,
    summary="Delivery report from OVHcloud (query, form or JSON)",
    operation_id="ovh_delivery_report_post",
)
async def delivery_report(_: TokenChecked, request: Request, session: SessionDep) -> CallbackAck:
    """Record a delivery report (``id``, ``dlr``, ``ptt``, ``date``, descriptions).

    Idempotent: the same report twice is stored once. A report for an SMS
    whose send answer is not stored yet is kept and applied when it is.
    """
    params = await callback_params(request)
    unknown = sorted(set(params) - _KNOWN_DLR_PARAMS)
    if unknown:
        log.info("delivery report with unknown parameters: %s", ", ".join(unknown[:10]))
    provider_id = (params.get("id") or params.get("smsId") or "").strip()
    if not provider_id:
        raise Problem(
            422,
            "malformed-callback",
            "Malformed callback",
            "Parameter 'id' is missing.",
            errors=[{"field": "id", "message": "missing"}],
        )
    dlr = _int_param(params, "dlr", required=True)
    assert dlr is not None
    date = params.get("date") or None
    description = params.get("descriptionDlr") or params.get("description") or None
    report = ReportIn(
        provider="ovh",
        provider_id=provider_id[:64],
        dlr=dlr,
        ptt=_int_param(params, "ptt", required=False),
        # Cut to their columns' sizes: PostgreSQL refuses longer strings (SQLite does not).
        reported_at=date[:64] if date else None,
        description=description[:255] if description else None,
        params={k: v for k, v in params.items() if k not in {"receiver", "sender"}},
        tag=params.get("tag") or None,
        receiver=params.get("receiver") or None,
    )
    created = await record_report(session, report)
    await session.commit()
    # The send's answer may have been stored while this report was being
    # written; look once more now that the report is visible to the dispatcher.
    if created and await rematch_report(session, report.dedup_key):
        await session.commit()
    return CallbackAck(status="ok", duplicate=not created)
