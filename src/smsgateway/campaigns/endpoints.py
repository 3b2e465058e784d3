"""``/v1/campaigns``: dry runs, accepting, following and cancelling campaigns."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, BinaryIO

from fastapi import APIRouter, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from smsgateway.campaigns.schemas import CampaignDryRun, CampaignIn, CampaignList, CampaignOut
from smsgateway.campaigns.service import (
    cancel_campaign,
    create_campaign,
    describe,
    get_campaign,
    list_campaigns,
)
from smsgateway.deps import ClientDep, RuntimeDep, SessionDep
from smsgateway.errors import PROBLEM_JSON, Problem

router = APIRouter(prefix="/v1/campaigns", tags=["campaigns"])

_PROBLEM: dict[str, Any] = {"content": {PROBLEM_JSON: {}}}
_FORM_FIELDS = ("name", "text", "csv", "tag", "send_at", "dry_run", "quiet_hours")

_MULTIPART_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["name", "text", "file"],
    "properties": {
        "file": {"type": "string", "format": "binary", "description": "The CSV"},
        "name": {"type": "string", "maxLength": 100},
        "text": {"type": "string", "maxLength": 1600},
        "tag": {"type": "string", "maxLength": 64},
        "send_at": {"type": "string", "format": "date-time"},
        "dry_run": {"type": "boolean", "default": False},
        "quiet_hours": {"type": "boolean", "default": True},
    },
}


@router.post(
    "",
    status_code=202,
    response_model=None,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": CampaignIn.model_json_schema()},
                "multipart/form-data": {"schema": _MULTIPART_SCHEMA},
            },
        }
    },
    responses={
        200: {"model": CampaignDryRun, "description": "A dry run: what would be sent"},
        202: {"model": CampaignOut, "description": "Accepted; messages are being created"},
        401: {"description": "Missing or invalid API key", **_PROBLEM},
        402: {"description": "Not enough credits for the whole campaign", **_PROBLEM},
        413: {"description": "The upload is over the size limit", **_PROBLEM},
        415: {"description": "Neither JSON nor multipart/form-data", **_PROBLEM},
        422: {
            "description": "Invalid campaign: no number column, a placeholder without a"
            " column, too many rows, an unreadable file, nothing to send",
            **_PROBLEM,
        },
    },
    summary="Create a campaign (or dry-run one)",
)
async def post_campaign(
    request: Request, client: ClientDep, session: SessionDep, runtime: RuntimeDep
) -> JSONResponse:
    """Send one text, with ``#COLUMN#`` placeholders filled per row, to every row of a CSV.

    The CSV (UTF-8, `;` or `,` separated) has a header with a `number` column
    and any others; `#FIRSTNAME#` in the text is the row's `firstname`. Send it
    inline as JSON (`csv`, up to 1 MiB) or upload it as `multipart/form-data`
    (`file`, up to the campaign upload limit, 20 MiB by default).

    With `dry_run` the answer (200) counts rows, lists invalid rows with the
    reason and the opted-out or suspended numbers that will be skipped, and
    gives the SMS parts (OVHcloud's STOP mention counted), credits and cost;
    nothing is stored. Otherwise the campaign's credits are reserved (402 and
    nothing stored when short) and the answer (202) is the campaign; its
    messages are created in the background and sent at the campaign rate, in
    marketing hours and out of each recipient's quiet hours.
    """
    # No pooled connection is held while the upload streams in: a client
    # trickling its file must not take the database from everyone else.
    await session.close()
    async with _campaign_input(request) as (body, source):
        outcome = await create_campaign(session, runtime, client.id, body, source)
        if isinstance(outcome, CampaignDryRun):
            return JSONResponse(outcome.model_dump(mode="json"), status_code=200)
        shown = await describe(session, outcome)
    return JSONResponse(shown.model_dump(mode="json"), status_code=202)


@router.get(
    "",
    response_model=CampaignList,
    responses={401: {"description": "Missing or invalid API key", **_PROBLEM}},
    summary="List campaigns",
)
async def get_campaigns(
    client: ClientDep,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> CampaignList:
    """The calling client's campaigns, newest first."""
    campaigns = await list_campaigns(session, client.id, limit)
    return CampaignList(items=[await describe(session, c) for c in campaigns])


@router.get(
    "/{campaign_id}",
    response_model=CampaignOut,
    responses={404: {"description": "No such campaign for this client", **_PROBLEM}},
    summary="Get a campaign and its progress",
)
async def get_one(campaign_id: str, client: ClientDep, session: SessionDep) -> CampaignOut:
    """The campaign, its summary, and its messages counted by status."""
    return await describe(session, await get_campaign(session, client.id, campaign_id))


@router.post(
    "/{campaign_id}/cancel",
    response_model=CampaignOut,
    responses={
        404: {"description": "No such campaign for this client", **_PROBLEM},
        409: {"description": "Every message was already sent", **_PROBLEM},
    },
    summary="Cancel what a campaign has not sent yet",
)
async def cancel(campaign_id: str, client: ClientDep, session: SessionDep) -> CampaignOut:
    """Stop creating messages, cancel the queued ones and return their credits."""
    campaign = await cancel_campaign(session, client.id, campaign_id)
    await session.commit()
    return await describe(session, campaign)


@asynccontextmanager
async def _campaign_input(request: Request) -> AsyncIterator[tuple[CampaignIn, BinaryIO]]:
    """The campaign fields and the CSV as a binary file, from JSON or multipart.

    A multipart upload is spooled to a temporary file by the form parser as it
    streams in (never held whole in memory); the form is closed on exit.
    """
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json":
        try:
            raw = await request.json()
        except ValueError:
            raise Problem(400, "invalid-json", "Invalid JSON", "The body is not JSON.") from None
        body = _validated(raw if isinstance(raw, dict) else {"": raw})
        if body.csv is None:
            raise _missing_csv()
        yield body, io.BytesIO(body.csv.encode("utf-8"))
        return
    if content_type != "multipart/form-data":
        raise Problem(
            415,
            "unsupported-media-type",
            "Unsupported media type",
            "Send application/json (inline csv) or multipart/form-data (a file).",
        )
    async with request.form(max_files=1, max_fields=len(_FORM_FIELDS) + 1) as form:
        upload = form.get("file")
        fields = {k: v for k, v in form.multi_items() if k != "file" and isinstance(v, str)}
        unknown = [k for k, _ in form.multi_items() if k not in (*_FORM_FIELDS, "file")]
        body = _validated({**fields, **dict.fromkeys(unknown, "")})
        if isinstance(upload, UploadFile) and body.csv is None:
            yield body, upload.file
        elif body.csv is not None and upload is None:
            yield body, io.BytesIO(body.csv.encode("utf-8"))
        else:
            raise _missing_csv()


def _validated(raw: dict[str, Any]) -> CampaignIn:
    try:
        return CampaignIn.model_validate(raw)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**error, "loc": ("body", *error["loc"])} for error in exc.errors()]
        ) from None


def _missing_csv() -> RequestValidationError:
    return RequestValidationError(
        [{"loc": ("body", "csv"), "msg": "give the CSV once: inline csv, or a file upload"}]
    )
