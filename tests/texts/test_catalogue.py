"""The text catalogue: every language complete, one tone each, every system text one part."""

from __future__ import annotations

import re

import pytest

from smsgateway.texts import DEFAULT_TEMPLATES, LANGUAGES, SYSTEM_TEXTS, de, en, fr, system_text

GSM7 = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)

# Informal address: German "du" and its forms, and the "du" imperative of the verb
# every reply text uses; French "tu" and its possessives, and its imperative "réponds".
INFORMAL = {
    "de": re.compile(r"\b(du|dich|dir|dein\w*|euch|euer|antworte|erhältst)\b", re.IGNORECASE),
    "fr": re.compile(r"\b(tu|toi|ton|ta|tes|réponds)\b", re.IGNORECASE),
}


def texts_of(language: str) -> list[str]:
    booking = [t for (_, _, lang), t in DEFAULT_TEMPLATES.items() if lang == language]
    return booking + list(SYSTEM_TEXTS[language].values())


def test_every_language_has_the_same_texts() -> None:
    assert LANGUAGES == ("en", "fr", "de")
    for module in (fr, de):
        assert set(module.BOOKING) == set(en.BOOKING)
        assert set(module.SYSTEM) == set(en.SYSTEM)
    keys = {lang: {(t, r) for t, r, x in DEFAULT_TEMPLATES if x == lang} for lang in LANGUAGES}
    assert keys["fr"] == keys["de"] == keys["en"]


@pytest.mark.parametrize("language", sorted(INFORMAL))
def test_one_formal_tone_per_language(language: str) -> None:
    informal = [t for t in texts_of(language) if INFORMAL[language].search(t)]
    assert informal == []


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("name", sorted(en.SYSTEM))
def test_system_text_fits_one_gsm7_part(language: str, name: str) -> None:
    values = {"service": "x" * 40, "code": "123456", "minutes": "10", "minute_word": "minutes"}
    text = system_text(name, language, "en", **values)
    assert all(c in GSM7 for c in text)
    assert len(text) <= 160


@pytest.mark.parametrize(
    ("requested", "default", "expected"),
    [("fr-CA", "en", "fr"), ("de_AT", "en", "de"), ("pl", "de", "de"), (None, "xx", "en")],
)
def test_system_texts_fall_back_by_primary_subtag_then_default(
    requested: str | None, default: str, expected: str
) -> None:
    assert (
        system_text("start_confirmation", requested, default)
        == (SYSTEM_TEXTS[expected]["start_confirmation"])
    )
