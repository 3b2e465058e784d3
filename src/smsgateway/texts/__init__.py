"""Every SMS text the gateway writes itself, one module per language.

Rules every text here keeps (tests check them):

- GSM 03.38 characters only: one "ê" or curly quote would switch the whole SMS to
  UCS-2, 70 characters a part instead of 160. Spanish is not shipped for that reason:
  correct Spanish needs á, í, ó, ú.
- One part: booking texts fit 160 characters with every placeholder at its declared
  maximum (``templates.defaults.PLACEHOLDERS``), system texts with a service name of
  about 40 characters.
- One tone per language: French says "vous", German "Sie".
- Every language has the same texts, so no recipient falls back to English for one.

Bottom layer: imports only ``smsgateway.booking``.
"""

from __future__ import annotations

from smsgateway.texts.catalogue import (
    DEFAULT_TEMPLATES,
    FALLBACK_LANGUAGE,
    LANGUAGES,
    MINUTE_WORDS,
    REPLY_WORDS,
    SYSTEM_TEXTS,
    Method,
    reply_words,
    system_text,
    text_language,
    verification_text,
)

__all__ = [
    "DEFAULT_TEMPLATES",
    "FALLBACK_LANGUAGE",
    "LANGUAGES",
    "MINUTE_WORDS",
    "REPLY_WORDS",
    "SYSTEM_TEXTS",
    "Method",
    "reply_words",
    "system_text",
    "text_language",
    "verification_text",
]
