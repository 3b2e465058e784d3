"""Finding the template for a message: stored text or the shipped default."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from smsgateway.templates.defaults import DEFAULT_TEMPLATES
from smsgateway.templates.render import render, resolve_language


@dataclass(frozen=True, slots=True)
class Template:
    event_type: str
    role: str
    language: str
    text: str
    is_default: bool

    def render(self, values: Mapping[str, Any]) -> str:
        return render(self.text, {k: str(v) for k, v in values.items()})


def _languages_for(event_type: str, role: str) -> list[str]:
    return [lang for (t, r, lang) in DEFAULT_TEMPLATES if t == event_type and r == role]


async def find_template(
    session: AsyncSession,
    event_type: str,
    role: str,
    language: str | None,
    default_language: str,
) -> Template:
    """The template in the best language available for ``language``.

    Falls back from a regional tag to its primary language, then to the
    default language, then to English.
    """
    available = _languages_for(event_type, role)
    chosen = resolve_language(language, available, default_language)
    return Template(event_type, role, chosen, DEFAULT_TEMPLATES[(event_type, role, chosen)], True)
