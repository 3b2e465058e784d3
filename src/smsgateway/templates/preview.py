"""Template previews: a template rendered with sample or given values, and its size.

The worst cases come from ``service.worst_case``, the same computation that decides
whether a template may be saved, so a preview never disagrees with a PUT.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy.ext.asyncio import AsyncSession

from smsgateway.config import Settings
from smsgateway.encoding import SmsParts, analyse
from smsgateway.errors import Problem
from smsgateway.templates.defaults import PLACEHOLDERS, SAMPLE_VALUES
from smsgateway.templates.languages import canonical_language
from smsgateway.templates.render import format_when, render
from smsgateway.templates.service import (
    UCS2_FILLER,
    Template,
    check_text,
    find_template,
    offered_placeholders,
    worst_case,
)
from smsgateway.texts import reply_words

# The DESIGN example booking (Tue 1 Dec 2026, 09:00 at +01:00), for sample dates.
_SAMPLE_ZONE = timezone(timedelta(hours=1))
_SAMPLE_STARTS_AT = datetime(2026, 12, 1, 9, 0, tzinfo=_SAMPLE_ZONE)
_SAMPLE_EXPIRES_AT = datetime(2026, 11, 22, 9, 0, tzinfo=_SAMPLE_ZONE)


def sample_values(language: str) -> dict[str, str]:
    """``SAMPLE_VALUES`` with the dates and reply words a booking event has in ``language``."""
    # The event layer's own table, so a French preview says OUI/NON exactly as the SMS will.
    yes, no = reply_words(language)
    return {
        **SAMPLE_VALUES,
        "starts_at": format_when(_SAMPLE_STARTS_AT, language),
        "expires_at": format_when(_SAMPLE_EXPIRES_AT, language),
        "reply_yes": yes,
        "reply_no": no,
    }


def fill_values(
    event_type: str, role: str, language: str, values: Mapping[str, str] | None
) -> dict[str, str]:
    """Sample values overridden by ``values``; a name the template cannot use is a 422."""
    offered = PLACEHOLDERS[(event_type, role)]
    for name in values or {}:
        if name not in offered:
            detail = (
                f"unknown placeholder {{{name[:40]}}} in values; this template can use: "
                + ", ".join(f"{{{n}}}" for n in sorted(offered))
            )
            raise Problem(
                422,
                "invalid-template",
                "Invalid template values",
                detail,
                placeholder=name[:40],
                errors=[{"field": f"values.{name[:40]}", "message": detail}],
            )
    return {**sample_values(language), **(values or {})}


async def render_template(
    session: AsyncSession,
    settings: Settings,
    event_type: str,
    role: str,
    language: str | None,
    values: Mapping[str, str] | None,
) -> tuple[Template, str]:
    """The template a reader of ``language`` gets, rendered with ``values`` or samples."""
    offered_placeholders(event_type, role, status=422)
    template = await find_template(
        session, event_type, role, language, settings.locale.default_language
    )
    return template, template.render(fill_values(event_type, role, template.language, values))


@dataclass(frozen=True, slots=True)
class Preview:
    """A rendered template and its size, with the worst cases the budget is checked on."""

    language: str
    rendered: SmsParts
    worst_case: SmsParts
    worst_case_ucs2: SmsParts
    max_segments: int


async def preview(
    session: AsyncSession,
    settings: Settings,
    *,
    event_type: str,
    role: str,
    language: str | None,
    text: str | None,
    values: Mapping[str, str] | None,
) -> Preview:
    """Render ``text`` (or the template a ``language`` reader gets) with sample values.

    The rendered text is what would be sent, smart encoding included.
    """
    offered_placeholders(event_type, role, status=422)
    if text is None:
        template, rendered = await render_template(
            session, settings, event_type, role, language, values
        )
        text, chosen = template.text, template.language
    else:
        check_text(event_type, role, text)
        chosen = language or canonical_language(settings.locale.default_language)
        rendered = render(text, fill_values(event_type, role, chosen, values))
    smart = settings.templates.smart_encoding
    return Preview(
        language=chosen,
        rendered=analyse(rendered, smart=smart),
        worst_case=worst_case(event_type, role, text, smart=smart),
        worst_case_ucs2=worst_case(event_type, role, text, smart=smart, filler=UCS2_FILLER),
        max_segments=settings.templates.max_parts,
    )
