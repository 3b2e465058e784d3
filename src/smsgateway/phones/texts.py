"""The verification SMS, in the user's language.

Short on purpose: each fits one GSM-7 part with a service name of up to about
40 characters (only letters GSM 03.38 has: é, ü, ä are in it). The reply word
is the one the reply reader understands in that language (YES, OUI, JA).
"""

from __future__ import annotations

from typing import Literal

Method = Literal["reply", "code"]

_REPLY: dict[str, str] = {
    "en": "{service}: reply YES to confirm this number for SMS notifications.",
    "fr": "{service} : répondez OUI pour confirmer ce numéro pour les notifications SMS.",
    "de": "{service}: Antworten Sie JA, um diese Nummer für SMS-Benachrichtigungen zu bestätigen.",
}

_CODE: dict[str, str] = {
    "en": "{service}: your verification code is {code}. It expires in {minutes} {minute_word}.",
    "fr": "{service} : votre code de vérification est {code}."
    " Il expire dans {minutes} {minute_word}.",
    "de": "{service}: Ihr Bestätigungscode lautet {code}. Er läuft in {minutes} {minute_word} ab.",
}

# (singular, plural); German "in 10 Minuten" takes the dative plural.
_MINUTE_WORDS: dict[str, tuple[str, str]] = {
    "en": ("minute", "minutes"),
    "fr": ("minute", "minutes"),
    "de": ("Minute", "Minuten"),
}

LANGUAGES = tuple(_REPLY)


def text_language(language: str | None, default_language: str) -> str:
    """The language the text is written in: ``fr-CA`` reads ``fr``, unknown ones the default."""
    for candidate in (language, default_language):
        if candidate:
            primary = candidate.split("-")[0].lower()
            if primary in _REPLY:
                return primary
    return "en"


def verification_text(
    method: Method,
    language: str | None,
    default_language: str,
    *,
    service: str,
    code: str | None = None,
    ttl_seconds: int = 600,
) -> tuple[str, str]:
    """The SMS text and the language it is in.

    The code's lifetime is written in whole minutes, rounded down, so the text
    never promises more time than the code has.
    """
    lang = text_language(language, default_language)
    if method == "reply":
        return _REPLY[lang].format(service=service), lang
    if code is None:
        raise ValueError("a code verification text needs the code")
    minutes = max(1, ttl_seconds // 60)
    singular, plural = _MINUTE_WORDS[lang]
    text = _CODE[lang].format(
        service=service,
        code=code,
        minutes=minutes,
        minute_word=singular if minutes == 1 else plural,
    )
    return text, lang
