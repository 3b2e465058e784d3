"""Placeholder checks and rendering of SMS templates, plus the localized bits they need.

Templates use ``str.format`` field syntax restricted to bare names (``{booking_title}``):
no positional fields, attribute or index access, conversions or format specs. The
restriction keeps templates editable by admins without letting them reach into the
objects behind the values, and keeps the rendered length predictable from the
declared maximum length of each placeholder.
"""

from __future__ import annotations

import string
import unicodedata
from collections.abc import Collection, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from babel import Locale, UnknownLocaleError
from babel.dates import format_skeleton, format_time, get_datetime_format

from smsgateway.texts import FALLBACK_LANGUAGE

# Re-exported: the event layer reads the reply words next to the other rendering helpers.
from smsgateway.texts import reply_words as reply_words

FIRST_NAME_MAX_LENGTH = 20

# Babel's date skeleton: abbreviated weekday, day and abbreviated month ("Tue, Dec 1",
# "mar. 1 déc."). Babel cannot format a skeleton mixing date and time fields, so the
# time is added with the locale's short time format (which knows 12 h vs 24 h).
_DATE_SKELETON = "MMMEd"


class TemplateError(ValueError):
    """A template is malformed, uses an unknown placeholder, or misses a value.

    ``placeholder`` names the offending placeholder when there is one (``None`` for
    errors such as an unbalanced brace that belong to no placeholder).
    """

    def __init__(self, message: str, *, placeholder: str | None = None) -> None:
        super().__init__(message)
        self.placeholder = placeholder


def placeholders_in(template: str) -> list[str]:
    """The placeholder names a template uses, each once, in order of first appearance.

    Raises ``TemplateError`` for unbalanced braces, positional fields (``{}``, ``{0}``),
    attribute or index access (``{a.b}``, ``{a[0]}``), conversions (``{a!r}``) and format
    specs (``{a:>10}``). Literal braces are written ``{{`` and ``}}``.
    """
    names: list[str] = []
    for field, conversion, format_spec in _fields(template):
        if not field or field.isdigit():
            raise TemplateError(
                f"positional field {{{field}}} is not allowed: name the placeholder",
                placeholder=field or None,
            )
        if not field.isidentifier():
            what = (
                "attribute or index access is" if any(c in field for c in ".[]") else "this name is"
            )
            raise TemplateError(
                f"placeholder {{{field}}}: {what} not allowed, use a bare name"
                " such as {booking_title}",
                placeholder=field,
            )
        if conversion is not None:
            raise TemplateError(
                f"placeholder {{{field}!{conversion}}}: conversions are not allowed",
                placeholder=field,
            )
        if format_spec:
            raise TemplateError(
                f"placeholder {{{field}:{format_spec}}}: format specs are not allowed",
                placeholder=field,
            )
        if field not in names:
            names.append(field)
    return names


def _fields(template: str) -> Iterator[tuple[str, str | None, str]]:
    """(field name, conversion, format spec) of each replacement field."""
    try:
        # parse() is lazy: errors surface while iterating, so consume it inside the try.
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise TemplateError(
            f"malformed template ({exc}); write a literal brace as {{{{ or }}}}"
        ) from exc
    for _literal, field, format_spec, conversion in parsed:
        if field is not None:
            yield field, conversion, format_spec or ""


def check_template(template: str, allowed: Collection[str]) -> None:
    """Raise ``TemplateError`` naming the first placeholder not in ``allowed``."""
    for name in placeholders_in(template):
        if name not in allowed:
            offered = ", ".join(f"{{{a}}}" for a in sorted(allowed)) or "none"
            raise TemplateError(
                f"unknown placeholder {{{name}}}; this template can use: {offered}",
                placeholder=name,
            )


def render(template: str, values: Mapping[str, str]) -> str:
    """Fill a template's placeholders from ``values`` (extra values are ignored)."""
    for name in placeholders_in(template):
        if name not in values:
            raise TemplateError(f"no value for placeholder {{{name}}}", placeholder=name)
    # Safe: placeholders_in() has ruled out attribute/index access and format specs.
    return template.format_map(values)


def format_when(moment: datetime, language: str) -> str:
    """A compact localized date and time for an SMS: "Tue, Dec 1, 9:00 AM", "mar. 1 déc. 09:00".

    The wall-clock time is shown in the moment's own UTC offset (the marketplace sends
    local times); naive datetimes are taken as UTC. Unknown languages fall back to
    English. For en, fr and de the result is at most 24 characters of GSM 03.38.
    """
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    # Equal aware datetimes may differ in offset, and the offset sets the wall clock.
    return _format_when(moment, moment.utcoffset(), language)


@lru_cache(maxsize=1024)
def _format_when(moment: datetime, _offset: timedelta | None, language: str) -> str:
    """``format_when``, kept for moments seen lately (an event's dates recur in its texts)."""
    locale = _babel_locale(language)
    date_part = format_skeleton(_DATE_SKELETON, moment, locale=locale)
    time_part = format_time(moment, format="short", locale=locale)
    # The locale's own glue between date and time ("{1}, {0}" in en, "{1} {0}" in fr);
    # quotes in CLDR patterns only escape literals, as in babel's format_datetime.
    glue = str(get_datetime_format("short", locale=locale)).replace("'", "")
    text = glue.replace("{0}", time_part).replace("{1}", date_part)
    # CLDR separates "9:00 AM" with a narrow no-break space, which is not GSM 03.38 and
    # would turn the whole SMS into UCS-2 (70 characters a part instead of 160).
    text = "".join(" " if unicodedata.category(c) == "Zs" else c for c in text)
    if locale.language == "fr":
        # Same reason: "û" is not GSM 03.38, and "aout" is the 1990 reformed spelling.
        text = text.replace("août", "aout")
    return text


def _babel_locale(language: str) -> Locale:
    tag = language.strip().replace("-", "_")
    for candidate in (tag, tag.split("_")[0], FALLBACK_LANGUAGE):
        try:
            return Locale.parse(candidate)
        except (UnknownLocaleError, ValueError):
            continue
    raise AssertionError("unreachable: babel always knows English")  # pragma: no cover


def resolve_language(requested: str | None, available: Collection[str], default: str) -> str:
    """Pick the template language for a recipient, as spelled in ``available``.

    BCP 47 lookup, matching case-insensitively with "_" read as "-": the requested tag,
    its primary subtag ("pt-BR" -> "pt"), then ``default`` (and its primary subtag),
    then "en". Raises ``LookupError`` when none of these is available.
    """
    by_tag: dict[str, str] = {}
    for language in available:
        by_tag.setdefault(_normalise_tag(language), language)
    chain = [*_tag_and_primary(requested or ""), *_tag_and_primary(default), FALLBACK_LANGUAGE]
    for tag in chain:
        if tag in by_tag:
            return by_tag[tag]
    raise LookupError(
        f"no template language among {sorted(available)} for {requested!r} (default {default!r})"
    )


def _normalise_tag(tag: str) -> str:
    return tag.strip().replace("_", "-").lower()


def _tag_and_primary(tag: str) -> list[str]:
    normalised = _normalise_tag(tag)
    if not normalised:
        return []
    return [normalised, normalised.split("-")[0]]


def first_name(name: str) -> str:
    """The first word of a display name, at most 20 characters ("" stays "").

    SMS address people by first name only: it is friendlier and bounds the length,
    which the worst-case part count relies on.
    """
    words = name.split()
    return words[0][:FIRST_NAME_MAX_LENGTH] if words else ""


def clip(value: str, limit: int) -> str:
    """``value`` cut to ``limit`` characters, marking the cut with "..."."""
    if len(value) <= limit:
        return value
    return value[: max(0, limit - 3)].rstrip() + "..."
