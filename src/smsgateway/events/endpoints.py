from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from smsgateway.deps import ClientDep, RuntimeDep, SessionDep
from smsgateway.errors import PROBLEM_JSON
from smsgateway.events.schemas import BookingEventAccepted, BookingEventIn
from smsgateway.events.service import accept_event

router = APIRouter(prefix="/v1", tags=["booking events"])

_PROBLEM: dict[str, Any] = {"content": {PROBLEM_JSON: {}}}


@router.post(
    "/booking-events",
    status_code=202,
    response_model=BookingEventAccepted,
    responses={
        200: {"model": BookingEventAccepted, "description": "A replay: the first answer"},
        401: {"description": "Missing or invalid API key", **_PROBLEM},
        409: {"description": "The event_id was used with another body", **_PROBLEM},
        422: {"description": "Invalid event", **_PROBLEM},
    },
    summary="Post a booking event",
)
async def post_booking_event(
    event: BookingEventIn,
    client: ClientDep,
    session: SessionDep,
    runtime: RuntimeDep,
    response: Response,
) -> BookingEventAccepted:
    """Create one message per recipient of the event and queue them.

    The answer comes after the messages are committed. Posting the same
    event again answers the first answer (status 200) and sends nothing.
    """
    answer, created = await accept_event(session, runtime, client, event)
    if not created:
        response.status_code = 200
    return answer
