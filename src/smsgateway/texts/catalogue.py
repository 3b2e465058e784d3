"""The language modules assembled into the lookups the gateway uses.

One module per language (``en``, ``fr``, ``de``) holds all its wording; this module
only indexes it and picks the language a recipient gets.
"""

from __future__ import annotations

from typing import Literal

from smsgateway.texts import de, en, fr

FALLBACK_LANGUAGE = "en"

_BOOKING: dict[str, dict[tuple[str, str], str]] = {
    "en": en.BOOKING,
    "fr": fr.BOOKING,
    "de": de.BOOKING,
}
SYSTEM_TEXTS: dict[str, dict[str, str]] = {"en": en.SYSTEM, "fr": fr.SYSTEM, "de": de.SYSTEM}
REPLY_WORDS: dict[str, tuple[str, str]] = {
    "en": en.REPLY_WORDS,
    "fr": fr.REPLY_WORDS,
    "de": de.REPLY_WORDS,
}
MINUTE_WORDS: dict[str, tuple[str, str]] = {
    "en": en.MINUTE_WORDS,
    "fr": fr.MINUTE_WORDS,
    "de": de.MINUTE_WORDS,
}

LANGUAGES: tuple[str, ...] = tuple(SYSTEM_TEXTS)

# The shipped booking templates by (event type, role, language): what a client gets
# until it stores its own.
DEFAULT_TEMPLATES: dict[tuple[str, str, str], str] = {
    (event_type, role, language): text
    for language, booking in _BOOKING.items()
    for (event_type, role), text in booking.items()
}

Method = Literal["reply", "code"]


def text_language(language: str | None, default_language: str) -> str:
    """The shipped language a text is written in for ``language``.

    The primary subtag decides ("fr-CA" and "fr_ca" read "fr"); a language not shipped
    falls back to ``default_language`` (read the same way), then to English.
    """
    for candidate in (language, default_language):
        primary = (candidate or "").strip().replace("_", "-").split("-")[0].lower()
        if primary in SYSTEM_TEXTS:
            return primary
    return FALLBACK_LANGUAGE


def system_text(name: str, language: str | None, default_language: str, **values: str) -> str:
    """The text ``name`` (a key of ``SYSTEM_TEXTS``) in the best language shipped."""
    return SYSTEM_TEXTS[text_language(language, default_language)][name].format(**values)


def verification_text(
    method: Method,
    language: str | None,
    default_language: str,
    *,
    service: str,
    code: str | None = None,
    ttl_seconds: int = 600,
) -> tuple[str, str]:
    """The verification SMS and the language it is in.

    The code's lifetime is written in whole minutes, rounded down, so the text
    never promises more time than the code has.
    """
    lang = text_language(language, default_language)
    if method == "reply":
        return system_text("verification_reply", lang, lang, service=service), lang
    if code is None:
        raise ValueError("a code verification text needs the code")
    minutes = max(1, ttl_seconds // 60)
    singular, plural = MINUTE_WORDS[lang]
    text = system_text(
        "verification_code",
        lang,
        lang,
        service=service,
        code=code,
        minutes=str(minutes),
        minute_word=singular if minutes == 1 else plural,
    )
    return text, lang


def reply_words(language: str) -> tuple[str, str]:
    """The words an offeror replies with to accept or refuse, in ``language``.

    Any language not shipped (a client's own Spanish template) gets YES/NO.
    """
    return REPLY_WORDS.get(language.split("-")[0].lower(), REPLY_WORDS[FALLBACK_LANGUAGE])
