from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from smsgateway.credits.reservations import commit_reserved, reserve
from smsgateway.dates import check_schedule
from smsgateway.deps import ClientDep, RuntimeDep, SessionDep
from smsgateway.errors import PROBLEM_JSON
from smsgateway.messages.recipients import resolve_recipient
from smsgateway.messages.schemas import DirectMessageIn, MessageList, MessageOut
from smsgateway.messages.service import (
    announce_queued,
    build_message,
    cancel_message,
    get_message,
    list_messages,
)
from smsgateway.models.status import Status

router = APIRouter(prefix="/v1/messages", tags=["messages"])

_PROBLEM: dict[str, Any] = {"content": {PROBLEM_JSON: {}}}


@router.post(
    "",
    status_code=202,
    response_model=MessageOut,
    responses={
        401: {"description": "Missing or invalid API key", **_PROBLEM},
        422: {"description": "Invalid message", **_PROBLEM},
    },
    summary="Send one SMS",
)
async def post_message(
    body: DirectMessageIn, client: ClientDep, session: SessionDep, runtime: RuntimeDep
) -> MessageOut:
    """Queue a text to one number (now, or at ``send_at``).

    Direct sends are urgent: they go at once (or at ``send_at``) whatever the
    hour. With ``quiet_hours: true`` a text due between 22:00 and 08:00 in the
    recipient's local time waits until 08:00 there (``due_at`` shows when).

    An invalid number gives a ``rejected`` message and an opted-out or
    suspended one a ``blocked`` message, stored with the reason.
    """
    check_schedule(body.send_at, runtime.settings.dispatch.max_schedule_days)
    recipient = await resolve_recipient(
        session,
        client_id=client.id,
        user_ref=None,
        phone=body.to,
        require_verified=False,
        default_region=runtime.settings.locale.default_region,
        allowed_types=runtime.settings.locale.allowed_types,
        countries=client.countries(runtime.settings.api.default_allowed_countries),
    )
    message = build_message(
        runtime,
        client_id=client.id,
        recipient=recipient,
        text=body.text,
        send_at=body.send_at,
        quiet_hours=body.quiet_hours,
        tag=body.tag,
    )
    session.add(message)
    await reserve(session, client.id, [message])
    if message.status == Status.QUEUED:
        await announce_queued(session, runtime)
    await commit_reserved(session, client.id)
    runtime.wakeup.set()
    return MessageOut.of(message)


@router.get(
    "",
    response_model=MessageList,
    responses={401: {"description": "Missing or invalid API key", **_PROBLEM}},
    summary="List messages",
)
async def get_messages(
    client: ClientDep,
    session: SessionDep,
    status: Annotated[Status | None, Query()] = None,
    tag: Annotated[str | None, Query(max_length=64)] = None,
    booking_id: Annotated[str | None, Query(max_length=128)] = None,
    campaign_id: Annotated[str | None, Query(max_length=36)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> MessageList:
    """The calling client's messages, newest first."""
    rows, next_cursor = await list_messages(
        session,
        client.id,
        status=status.value if status else None,
        tag=tag,
        booking_id=booking_id,
        campaign_id=campaign_id,
        limit=limit,
        cursor=cursor,
    )
    return MessageList(items=[MessageOut.of(m) for m in rows], next_cursor=next_cursor)


@router.get(
    "/{message_id}",
    response_model=MessageOut,
    responses={404: {"description": "No such message for this client", **_PROBLEM}},
    summary="Get one message",
)
async def get_one(message_id: str, client: ClientDep, session: SessionDep) -> MessageOut:
    return MessageOut.of(await get_message(session, client.id, message_id))


@router.delete(
    "/{message_id}",
    response_model=MessageOut,
    responses={
        202: {
            "description": "OVHcloud may have it (being sent, or looked up after a lost"
            " answer): it is cancelled unless it had it, and never sent again",
            "model": MessageOut,
        },
        404: {"description": "No such message", **_PROBLEM},
        409: {"description": "Already sent or final", **_PROBLEM},
    },
    summary="Cancel a message not yet sent",
)
async def cancel(
    message_id: str, client: ClientDep, session: SessionDep, response: Response
) -> MessageOut:
    if not await cancel_message(session, client.id, message_id):
        response.status_code = 202
    await session.commit()
    return MessageOut.of(await get_message(session, client.id, message_id))
