"""Booking templates: stored texts over the shipped defaults, their checks and history.

The shipped defaults (``defaults.py``) always exist. A stored text for the same
(type, role, language) overrides the default, and stored texts may add languages no
default ships. A recipient's text is chosen from the union of both by
``resolve_language``'s BCP 47 chain: ``pt-BR`` -> ``pt`` -> ``SMSGW_DEFAULT_LANGUAGE`` ->
``en``. Deleting a stored text makes the default apply again.

Every write is recorded in ``template_changes``. Services only flush: the request's
session commits, so a change and its history row land together or not at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from smsgateway.booking import RECIPIENTS
from smsgateway.db import utcnow
from smsgateway.encoding import SmsParts, analyse
from smsgateway.errors import Problem
from smsgateway.models.templates import StoredTemplate, TemplateChange
from smsgateway.templates.cache import TemplateCache, templates_changed
from smsgateway.templates.defaults import PLACEHOLDERS
from smsgateway.templates.render import (
    TemplateError,
    check_template,
    render,
    resolve_language,
)
from smsgateway.texts import DEFAULT_TEMPLATES

# Worst-case fillers. The budget is checked with GSM-7 basic letters, one septet each:
# the cost of the template's own wording when values are plain names and titles. A
# value with one character outside GSM 03.38 (Łukasz, Zoë) switches the whole message
# to UCS-2; ``worst_case_ucs2`` shows that case with a BMP letter (one UTF-16 unit).
GSM7_FILLER = "x"
UCS2_FILLER = "ê"


@dataclass(frozen=True, slots=True)
class Template:
    """The text that applies to one (event type, role, language)."""

    event_type: str
    role: str
    language: str
    text: str
    is_default: bool
    has_default: bool = True  # whether a shipped default exists for this language
    updated_at: datetime | None = None
    updated_by: str | None = None
    placeholders: dict[str, int] = field(default_factory=dict)

    def render(self, values: Mapping[str, Any]) -> str:
        return render(self.text, {k: str(v) for k, v in values.items()})


def offered_placeholders(event_type: str, role: str, *, status: int = 404) -> dict[str, int]:
    """The placeholders a (type, role) offers, with their maximum length.

    A pair that gets no text is a ``unknown-template`` problem: 404 when it was named in
    the path (no such resource), 422 when it came in a request body.
    """
    placeholders = PLACEHOLDERS.get((event_type, role))
    if placeholders is not None:
        return dict(placeholders)
    if event_type not in RECIPIENTS:
        detail = f"Unknown event type {event_type[:60]!r}; known: {', '.join(RECIPIENTS)}."
    else:
        roles = " and ".join(RECIPIENTS[event_type])
        detail = f"{event_type} sends no text to the {role[:20]!r}; it texts the {roles}."
    raise Problem(status, "unknown-template", "No such template", detail)


def check_text(event_type: str, role: str, text: str) -> None:
    """Refuse a malformed template or one using a placeholder its (type, role) lacks.

    The 422 problem names the placeholder (``placeholder``, null for a stray brace).
    """
    try:
        check_template(text, PLACEHOLDERS[(event_type, role)])
    except TemplateError as exc:
        raise Problem(
            422,
            "invalid-template",
            "Invalid template",
            str(exc),
            placeholder=exc.placeholder,
            errors=[{"field": "text", "message": str(exc)}],
        ) from exc


def worst_case(
    event_type: str, role: str, text: str, *, smart: bool, filler: str = GSM7_FILLER
) -> SmsParts:
    """Size of ``text`` with every placeholder filled to its declared maximum length."""
    values = {name: filler * size for name, size in PLACEHOLDERS[(event_type, role)].items()}
    return analyse(render(text, values), smart=smart)


def check_budget(event_type: str, role: str, text: str, *, max_segments: int, smart: bool) -> None:
    """Refuse a template whose worst case takes more than ``max_segments`` SMS parts."""
    worst = worst_case(event_type, role, text, smart=smart)
    if worst.segments <= max_segments:
        return
    raise Problem(
        422,
        "template-over-budget",
        "Template over its SMS budget",
        f"With every placeholder at its maximum length this text takes {worst.segments}"
        f" SMS parts ({worst.encoding}, {worst.characters} characters); the limit is"
        f" {max_segments}. Shorten it, or save it anyway with force=true.",
        max_segments=max_segments,
        worst_case={
            "characters": worst.characters,
            "segments": worst.segments,
            "encoding": worst.encoding.value,
        },
    )


def _defaults(event_type: str, role: str) -> dict[str, Template]:
    placeholders = dict(PLACEHOLDERS.get((event_type, role), {}))
    return {
        language: Template(event_type, role, language, text, True, placeholders=placeholders)
        for (t, r, language), text in DEFAULT_TEMPLATES.items()
        if (t, r) == (event_type, role)
    }


def _effective(event_type: str, role: str, rows: Iterable[StoredTemplate]) -> dict[str, Template]:
    """Every language known for a (type, role): defaults, overridden or extended by rows."""
    templates = _defaults(event_type, role)
    for row in rows:
        templates[row.language] = _from_row(row, has_default=row.language in templates)
    return templates


def _from_row(row: StoredTemplate, *, has_default: bool) -> Template:
    return Template(
        row.event_type,
        row.role,
        row.language,
        row.text,
        is_default=False,
        has_default=has_default,
        updated_at=row.updated_at,
        updated_by=row.updated_by,
        placeholders=dict(PLACEHOLDERS.get((row.event_type, row.role), {})),
    )


async def _stored(session: AsyncSession, event_type: str, role: str) -> list[StoredTemplate]:
    query = select(StoredTemplate).where(
        StoredTemplate.event_type == event_type, StoredTemplate.role == role
    )
    return list((await session.scalars(query)).all())


async def _stored_one(
    session: AsyncSession, event_type: str, role: str, language: str
) -> StoredTemplate | None:
    # FOR UPDATE (PostgreSQL) so two concurrent writes record a consistent old_text.
    return await session.scalar(
        select(StoredTemplate)
        .where(
            StoredTemplate.event_type == event_type,
            StoredTemplate.role == role,
            StoredTemplate.language == language,
        )
        .with_for_update()
    )


async def find_template(
    session: AsyncSession,
    event_type: str,
    role: str,
    language: str | None,
    default_language: str,
    *,
    cache: TemplateCache | None = None,
) -> Template:
    """The template a recipient reading ``language`` gets.

    Falls back from a regional tag to its primary language, then to the default
    language, then to English, over stored texts and shipped defaults alike.
    With a ``cache``, the (type, role)'s templates are read from it when fresh.
    """
    pair = (event_type, role)
    available = cast("dict[str, Template] | None", cache.get(pair) if cache else None)
    if available is None:
        available = _effective(event_type, role, await _stored(session, event_type, role))
        if cache is not None:
            cache.put(pair, available)
    return available[resolve_language(language, available, default_language)]


async def list_templates(
    session: AsyncSession,
    *,
    event_type: str | None = None,
    role: str | None = None,
    language: str | None = None,
) -> list[Template]:
    """Every (type, role, language) known, in the order of ``PLACEHOLDERS`` then language."""
    query = select(StoredTemplate)
    if event_type is not None:
        query = query.where(StoredTemplate.event_type == event_type)
    if role is not None:
        query = query.where(StoredTemplate.role == role)
    rows_by_pair: dict[tuple[str, str], list[StoredTemplate]] = {}
    for row in (await session.scalars(query)).all():
        rows_by_pair.setdefault((row.event_type, row.role), []).append(row)
    found: list[Template] = []
    for pair in PLACEHOLDERS:
        if (event_type or pair[0], role or pair[1]) != pair:
            continue
        templates = _effective(*pair, rows_by_pair.get(pair, []))
        found.extend(templates[tag] for tag in sorted(templates) if language in (None, tag))
    return found


async def get_template(
    session: AsyncSession, event_type: str, role: str, language: str
) -> Template:
    """The template for exactly ``language`` (no fallback), or a 404 problem."""
    offered_placeholders(event_type, role)
    available = _effective(event_type, role, await _stored(session, event_type, role))
    if language not in available:
        raise Problem(
            404,
            "template-not-found",
            "Template not found",
            f"No {language} text for {event_type}/{role}; recipients reading {language}"
            " get a fallback language. PUT a text to add it.",
        )
    return available[language]


async def put_template(
    session: AsyncSession,
    event_type: str,
    role: str,
    language: str,
    text: str,
    *,
    actor: str,
    max_segments: int | None,
    smart: bool,
) -> Template:
    """Store ``text`` for a canonical ``language``, after checking it; record the change.

    ``max_segments`` None skips the budget check (``force=true``). Storing the text
    already stored changes nothing and records nothing.
    """
    offered_placeholders(event_type, role)
    check_text(event_type, role, text)
    if max_segments is not None:
        check_budget(event_type, role, text, max_segments=max_segments, smart=smart)
    has_default = (event_type, role, language) in DEFAULT_TEMPLATES
    row = await _stored_one(session, event_type, role, language)
    if row is not None and row.text == text:
        return _from_row(row, has_default=has_default)
    now = utcnow()
    old_text = row.text if row is not None else None
    if row is None:
        row = StoredTemplate(event_type=event_type, role=role, language=language)
        session.add(row)
    row.text, row.updated_at, row.updated_by = text, now, actor
    session.add(_change(row, "put", old_text, text, actor, now))
    templates_changed()
    try:
        await session.flush()
    except IntegrityError as exc:  # a concurrent PUT created the same language first
        raise Problem(
            409,
            "template-conflict",
            "Template changed concurrently",
            "Another write to this template happened at the same time; retry.",
        ) from exc
    return _from_row(row, has_default=has_default)


async def delete_template(
    session: AsyncSession, event_type: str, role: str, language: str, *, actor: str
) -> None:
    """Remove the stored text, so the shipped default (or a fallback language) applies."""
    offered_placeholders(event_type, role)
    row = await _stored_one(session, event_type, role, language)
    if row is None:
        raise Problem(
            404,
            "template-not-found",
            "No stored template",
            f"Nothing is stored for {event_type}/{role}/{language}: the shipped text, if any,"
            " already applies.",
        )
    session.add(_change(row, "delete", row.text, None, actor, utcnow()))
    await session.delete(row)
    await session.flush()
    templates_changed()


def _change(
    row: StoredTemplate,
    action: str,
    old_text: str | None,
    new_text: str | None,
    actor: str,
    now: datetime,
) -> TemplateChange:
    return TemplateChange(
        event_type=row.event_type,
        role=row.role,
        language=row.language,
        action=action,
        old_text=old_text,
        new_text=new_text,
        changed_by=actor,
        changed_at=now,
    )


async def list_changes(
    session: AsyncSession,
    *,
    event_type: str | None = None,
    role: str | None = None,
    language: str | None = None,
    limit: int = 100,
    before: int | None = None,
) -> list[TemplateChange]:
    """Template changes, newest first (by id), optionally for one template, before an id."""
    query = select(TemplateChange)
    if event_type is not None:
        query = query.where(TemplateChange.event_type == event_type)
    if role is not None:
        query = query.where(TemplateChange.role == role)
    if language is not None:
        query = query.where(TemplateChange.language == language)
    if before is not None:
        query = query.where(TemplateChange.id < before)
    query = query.order_by(TemplateChange.id.desc()).limit(limit)
    return list((await session.scalars(query)).all())
