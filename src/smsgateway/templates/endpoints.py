"""Template management: list, read, write, reset, history and preview.

Writes need the admin token. The token is one shared secret, so who made a change is
taken from the optional ``X-Actor`` header (default ``admin``) and kept in the history.
Reads and previews accept the admin token or a client's API key, so a marketplace can
show its users what they will receive.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from smsgateway.booking import EventType, Role
from smsgateway.deps import RuntimeDep, SessionDep, check_admin, current_client, require_admin
from smsgateway.errors import PROBLEM_JSON, Problem
from smsgateway.models.templates import TemplateChange
from smsgateway.templates import service
from smsgateway.templates.languages import canonical_language
from smsgateway.templates.preview import preview
from smsgateway.templates.schemas import (
    PreviewIn,
    PreviewOut,
    TemplateChangeList,
    TemplateChangeOut,
    TemplateIn,
    TemplateList,
    TemplateOut,
)

router = APIRouter(tags=["templates"])

_PROBLEM: dict[str, Any] = {"content": {PROBLEM_JSON: {}}}
_READ_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or invalid admin token or API key", **_PROBLEM},
    422: {"description": "Invalid language tag", **_PROBLEM},
}
_PATH_ERRORS: dict[int | str, dict[str, Any]] = {
    **_READ_ERRORS,
    404: {"description": "Unknown (type, role), or no text for that language", **_PROBLEM},
}

_admin_or_client = HTTPBearer(
    auto_error=False,
    scheme_name="AdminTokenOrApiKey",
    description="The admin token or a client's API key",
)


async def require_reader(
    request: Request,
    runtime: RuntimeDep,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_admin_or_client)],
) -> bool:
    """Let in the admin token, or a client's API key with that client's usual checks
    (IP allowlist, rate limit); 401 for anything else. True for the admin.
    """
    try:
        check_admin(runtime, credentials)
    except Problem:
        await current_client(session, credentials, request=request)
        return False
    return True


# Who made a change is the operators' business: a client's key sees "ops".
IsAdmin = Annotated[bool, Depends(require_reader)]


async def actor_of(
    x_actor: Annotated[
        str | None,
        Header(
            max_length=100,
            description="Who makes the change, kept in the history (default: admin)."
            " The admin token is shared, so this is how changes are told apart.",
        ),
    ] = None,
) -> str:
    return (x_actor or "").strip() or "admin"


Reader = Depends(require_reader)
Admin = Depends(require_admin)
ActorDep = Annotated[str, Depends(actor_of)]
TypePath = Annotated[str, Path(description="Booking event type, e.g. booking.requested")]
RolePath = Annotated[str, Path(description="Who receives the text: asker or offeror")]
LanguagePath = Annotated[
    str, Path(max_length=64, description="BCP 47 tag (fr, pt-BR, zh-Hant-TW); any case")
]
Limit = Annotated[int, Query(ge=1, le=1000)]
Before = Annotated[int | None, Query(ge=1, description="Only changes with a smaller id")]


@router.get(
    "/v1/templates",
    response_model=TemplateList,
    dependencies=[Reader],
    responses=_READ_ERRORS,
    summary="List templates",
)
async def list_templates(
    session: SessionDep,
    type: Annotated[EventType | None, Query()] = None,
    role: Annotated[Role | None, Query()] = None,
    language: Annotated[str | None, Query(max_length=35)] = None,
) -> TemplateList:
    """Every (type, role, language) with a text: the shipped defaults (``is_default``)
    and the stored ones, each with the placeholders it may use and their maximum length.
    """
    tag = canonical_language(language) if language else None
    found = await service.list_templates(session, event_type=type, role=role, language=tag)
    return TemplateList(items=[TemplateOut.of(t) for t in found])


@router.get(
    "/v1/templates/{type}/{role}/{language}",
    response_model=TemplateOut,
    dependencies=[Reader],
    responses=_PATH_ERRORS,
    summary="Get one template",
)
async def get_template(
    type: TypePath, role: RolePath, language: LanguagePath, session: SessionDep
) -> TemplateOut:
    """The text in effect for exactly this language (stored, else shipped), without
    fallback: 404 when recipients reading it would get another language.
    """
    tag = canonical_language(language)
    return TemplateOut.of(await service.get_template(session, type, role, tag))


@router.put(
    "/v1/templates/{type}/{role}/{language}",
    response_model=TemplateOut,
    dependencies=[Admin],
    responses={
        **_PATH_ERRORS,
        401: {"description": "Missing or invalid admin token", **_PROBLEM},
        404: {"description": "Unknown (type, role)", **_PROBLEM},
        409: {"description": "Changed concurrently; retry", **_PROBLEM},
        422: {
            "description": "Unknown or malformed placeholder (`invalid-template`, names it in"
            " `placeholder`), over budget (`template-over-budget`, with `worst_case`), or"
            " invalid language tag (`invalid-language`)",
            **_PROBLEM,
        },
    },
    summary="Set a template (admin)",
)
async def put_template(
    type: TypePath,
    role: RolePath,
    language: LanguagePath,
    body: TemplateIn,
    session: SessionDep,
    runtime: RuntimeDep,
    actor: ActorDep,
    force: Annotated[
        bool, Query(description="Save even if the worst case exceeds SMSGW_TEMPLATE_MAX_PARTS")
    ] = False,
) -> TemplateOut:
    """Store the text for (type, role, language), overriding the shipped one or adding a
    language. Any BCP 47 tag is accepted and stored in canonical spelling (``pt-br`` is
    ``pt-BR``). The change is recorded in the history with the ``X-Actor`` header.
    """
    tag = canonical_language(language)
    settings = runtime.settings
    template = await service.put_template(
        session,
        type,
        role,
        tag,
        body.text,
        actor=actor,
        max_segments=None if force else settings.templates.max_parts,
        smart=settings.templates.smart_encoding,
    )
    return TemplateOut.of(template)


@router.delete(
    "/v1/templates/{type}/{role}/{language}",
    status_code=204,
    response_class=Response,
    dependencies=[Admin],
    responses={
        **_PATH_ERRORS,
        401: {"description": "Missing or invalid admin token", **_PROBLEM},
        404: {"description": "Unknown (type, role), or nothing stored", **_PROBLEM},
    },
    summary="Return to the shipped template (admin)",
)
async def delete_template(
    type: TypePath, role: RolePath, language: LanguagePath, session: SessionDep, actor: ActorDep
) -> Response:
    """Remove the stored text: the shipped default applies again (or, for a language
    with no default, the fallback language). Recorded in the history.
    """
    tag = canonical_language(language)
    await service.delete_template(session, type, role, tag, actor=actor)
    return Response(status_code=204)


@router.get(
    "/v1/templates/{type}/{role}/{language}/history",
    response_model=TemplateChangeList,
    responses={**_PATH_ERRORS, 404: {"description": "Unknown (type, role)", **_PROBLEM}},
    summary="Changes of one template",
)
async def template_history(
    type: TypePath,
    role: RolePath,
    language: LanguagePath,
    session: SessionDep,
    is_admin: IsAdmin,
    limit: Limit = 100,
    before: Before = None,
) -> TemplateChangeList:
    """Every change of this template, newest first: who (for the admin token; "ops" for a
    client's key), when, old and new text."""
    service.offered_placeholders(type, role)
    tag = canonical_language(language)
    changes = await service.list_changes(
        session, event_type=type, role=role, language=tag, limit=limit, before=before
    )
    return _page(changes, limit, show_actor=is_admin)


@router.get(
    "/v1/template-changes",
    response_model=TemplateChangeList,
    responses=_READ_ERRORS,
    summary="All template changes",
)
async def template_changes(
    session: SessionDep, is_admin: IsAdmin, limit: Limit = 100, before: Before = None
) -> TemplateChangeList:
    """Every template change, newest first."""
    changes = await service.list_changes(session, limit=limit, before=before)
    return _page(changes, limit, show_actor=is_admin)


def _page(changes: list[TemplateChange], limit: int, *, show_actor: bool) -> TemplateChangeList:
    items = [TemplateChangeOut.of(c) for c in changes]
    if not show_actor:
        items = [item.model_copy(update={"changed_by": "ops"}) for item in items]
    # A full page may have more behind it; an empty next page is the (cheap) worst case.
    return TemplateChangeList(
        items=items, next_before=items[-1].id if len(items) == limit else None
    )


@router.post(
    "/v1/templates/preview",
    response_model=PreviewOut,
    dependencies=[Reader],
    responses={
        **_READ_ERRORS,
        422: {
            "description": "A (type, role) with no text, an invalid template or value name,"
            " or an invalid language tag",
            **_PROBLEM,
        },
    },
    summary="Render a template and count its SMS parts",
)
async def preview_template(body: PreviewIn, session: SessionDep, runtime: RuntimeDep) -> PreviewOut:
    """Render a template, saved (the one a reader of ``language`` gets, with fallback) or
    unsaved (``text``), with the given values or samples. Answers its encoding, characters
    and parts, and the worst case with every placeholder at its maximum length, which is
    what saving a template is checked against.
    """
    tag = canonical_language(body.language) if body.language else None
    result = await preview(
        session,
        runtime.settings,
        event_type=body.type,
        role=body.role,
        language=tag,
        text=body.text,
        values=body.values,
    )
    return PreviewOut.of(result)
