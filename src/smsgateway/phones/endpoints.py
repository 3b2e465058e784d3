"""Users' numbers: registration and verification, the subscriber list, suspension."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response

from smsgateway.credits.reservations import commit_reserved
from smsgateway.deps import ClientDep, RuntimeDep, SessionDep
from smsgateway.errors import PROBLEM_JSON, Problem
from smsgateway.numbers import country_of
from smsgateway.phones import registry, subscribers, verification
from smsgateway.phones.registry import EffectiveStatus
from smsgateway.phones.schemas import (
    CodeIn,
    NumberOut,
    NumberStatusIn,
    PhoneIn,
    PhoneOut,
    SubscriberList,
    SubscriberOut,
)

router = APIRouter(prefix="/v1", tags=["phone numbers"])

_PROBLEM: dict[str, Any] = {"content": {PROBLEM_JSON: {}}}
_AUTH: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or invalid API key", **_PROBLEM}
}
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "This user has no registered number", **_PROBLEM}
}

UserRef = Annotated[str, Path(min_length=1, max_length=128, description="The client's user id")]


@router.put(
    "/users/{user_ref}/phone",
    status_code=201,
    response_model=PhoneOut,
    responses={
        **_AUTH,
        200: {"model": PhoneOut, "description": "Already registered: nothing was sent"},
        402: {"description": "Not enough credits for the verification SMS", **_PROBLEM},
        409: {"description": "Another number or method is registered: DELETE first", **_PROBLEM},
        422: {
            "description": "Invalid number (`invalid-phone`), not a mobile (`not-mobile`),"
            " method `reply` where no reply can come back (`reply-not-possible`), bad language",
            **_PROBLEM,
        },
    },
    summary="Register a user's number and send its verification SMS",
)
async def put_phone(
    user_ref: UserRef,
    body: PhoneIn,
    client: ClientDep,
    session: SessionDep,
    runtime: RuntimeDep,
    response: Response,
) -> PhoneOut:
    """Register the number and queue exactly one verification SMS (`201`).

    The same number again answers its current state (`200`) and sends nothing;
    it may change `language`. To try again (the SMS failed, the code expired)
    or to change the number or the method, `DELETE` then `PUT`. An opted-out
    or suspended number is registered but gets no SMS.
    """
    client_id = client.id  # read now: a rollback in register expires loaded objects
    reg = await registry.register(
        session,
        runtime,
        client,
        user_ref=user_ref,
        raw_phone=body.phone,
        language=body.language,
        method=body.method,
    )
    answer = PhoneOut.of(reg, runtime.settings.verification.max_attempts)
    await commit_reserved(session, client_id)  # the verification SMS reserved credits
    if reg.sent:
        runtime.wakeup.set()
    if not reg.created:
        response.status_code = 200
    return answer


@router.get(
    "/users/{user_ref}/phone",
    response_model=PhoneOut,
    responses={**_AUTH, **_NOT_FOUND},
    summary="A user's number and its status",
)
async def get_phone(
    user_ref: UserRef, client: ClientDep, session: SessionDep, runtime: RuntimeDep
) -> PhoneOut:
    """`pending`, `verified`, or, for every client, `opted_out` (STOP) or `suspended`."""
    reg = await registry.registration(session, client.id, user_ref)
    return PhoneOut.of(reg, runtime.settings.verification.max_attempts)


@router.delete(
    "/users/{user_ref}/phone",
    status_code=204,
    response_class=Response,
    responses={**_AUTH, **_NOT_FOUND},
    summary="Remove a user's number",
)
async def delete_phone(user_ref: UserRef, client: ClientDep, session: SessionDep) -> Response:
    """Forget the number (a verification SMS not yet sent is cancelled and refunded).

    Registering it again sends a new verification SMS.
    """
    await registry.unregister(session, client.id, user_ref)
    await session.commit()
    return Response(status_code=204)


@router.post(
    "/users/{user_ref}/phone/verify",
    response_model=PhoneOut,
    responses={
        **_AUTH,
        **_NOT_FOUND,
        409: {"description": "No code was sent to this number (`no-code-sent`)", **_PROBLEM},
        410: {"description": "The code expired (`code-expired`)", **_PROBLEM},
        422: {"description": "Wrong code (`wrong-code`, with `attempts_left`)", **_PROBLEM},
        429: {"description": "No attempts left (`too-many-attempts`)", **_PROBLEM},
    },
    summary="Check the one-time code of a `code` verification",
)
async def verify_phone(
    user_ref: UserRef, body: CodeIn, client: ClientDep, session: SessionDep, runtime: RuntimeDep
) -> PhoneOut:
    """The right code marks the number `verified` and sends a `phone.verified` webhook.

    A number already verified answers `200` again. After
    `SMSGW_VERIFICATION_MAX_ATTEMPTS` wrong codes, or once the code has
    expired, only `DELETE` then `PUT` (a new code) helps.
    """
    check = await verification.check_code(session, runtime, client.id, user_ref, body.code)
    answer = PhoneOut.of(check.registration, runtime.settings.verification.max_attempts)
    await session.commit()  # a wrong code spends an attempt even though we answer 422
    if check.outcome == "wrong":
        left = check.attempts_left
        raise Problem(
            422,
            "wrong-code",
            "Wrong verification code",
            f"This is not the code sent by SMS; {left} attempt{'s' if left != 1 else ''} left.",
            attempts_left=left,
            errors=[{"field": "body.code", "message": "wrong code"}],
        )
    return answer


@router.get(
    "/phones",
    response_model=SubscriberList,
    responses={**_AUTH},
    summary="The subscriber list",
)
async def list_phones(
    client: ClientDep,
    session: SessionDep,
    runtime: RuntimeDep,
    status: Annotated[EffectiveStatus | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> SubscriberList:
    """The calling client's registered numbers, newest first, with what one SMS costs.

    `credits_per_sms` is the credits of one single-part SMS to the number's country.
    """
    rows, next_cursor = await subscribers.subscribers(
        session, client.id, status=status, limit=limit, cursor=cursor
    )
    items = []
    for phone, effective in rows:
        country = country_of(phone.number)
        items.append(
            SubscriberOut(
                phone=phone.number,
                country=country,
                user_ref=phone.user_ref,
                language=phone.language,
                method="code" if phone.method == "code" else "reply",
                status=effective,
                credits_per_sms=runtime.pricing.credits_per_part(country),
                created_at=phone.created_at,
                verified_at=phone.verified_at,
            )
        )
    return SubscriberList(items=items, next_cursor=next_cursor)


@router.patch(
    "/phones/{number}",
    response_model=NumberOut,
    responses={
        **_AUTH,
        404: {"description": "None of this client's users registered the number", **_PROBLEM},
        422: {"description": "Not a valid number", **_PROBLEM},
    },
    summary="Suspend or reactivate a number",
)
async def patch_phone(
    number: Annotated[
        str,
        Path(
            max_length=40,
            description="E.164, with or without `+` (`%2B33601020304`, `33601020304`)",
        ),
    ],
    body: NumberStatusIn,
    client: ClientDep,
    session: SessionDep,
    runtime: RuntimeDep,
) -> NumberOut:
    """`suspended`: the number gets no SMS from any client until reactivated (`active`).

    Messages still queued for it are blocked (`suspended`) and refunded. The
    number must be registered by one of the calling client's users. An
    opted-out number stays `opted_out` whatever this says: only the user's
    START lifts that.
    """
    e164 = subscribers.path_number(number)
    state = await subscribers.set_suspended(
        session, client.id, e164, suspended=body.status == "suspended"
    )
    await session.commit()
    country = country_of(e164)
    return NumberOut(
        phone=e164,
        country=country,
        status=NumberOut.status_of(state),
        suspended_at=state.suspended_at,
        opted_out_at=state.opted_out_at,
        credits_per_sms=runtime.pricing.credits_per_part(country),
    )
