"""BCP 47 language tags: which are accepted, and the one spelling they are stored in."""

from __future__ import annotations

import re

from smsgateway.errors import Problem

LANGUAGE_TAG_MAX_LENGTH = 35  # RFC 5646 §4.4.1: the length every implementation must accept

# RFC 5646 "langtag" (well-formed, not checked against the registry), lower-cased first.
# Grandfathered tags such as "i-klingon" are refused: none is a language anyone texts in.
_LANGUAGE_TAG = re.compile(
    r"""
    (?:[a-z]{2,3}(?:-[a-z]{3}){0,3}|[a-z]{4,8})  # language, with up to 3 extlangs
    (?:-[a-z]{4})?                               # script
    (?:-(?:[a-z]{2}|[0-9]{3}))?                  # region
    (?:-(?:[a-z0-9]{5,8}|[0-9][a-z0-9]{3}))*     # variants
    (?:-[0-9a-wyz](?:-[a-z0-9]{2,8})+)*          # extensions
    (?:-x(?:-[a-z0-9]{1,8})+)?                   # private use
    """,
    re.VERBOSE,
)


def canonical_language(tag: str, *, field_name: str = "language") -> str:
    """The canonical spelling of a BCP 47 tag: ``PT_br`` -> ``pt-BR``, ``zh-hant`` -> ``zh-Hant``.

    Stored rows use this spelling so one language is one row however it was typed.
    Raises a 422 ``invalid-language`` problem for a tag that is not well-formed.
    """
    candidate = tag.strip().replace("_", "-").lower()
    if len(candidate) > LANGUAGE_TAG_MAX_LENGTH or not _LANGUAGE_TAG.fullmatch(candidate):
        detail = (
            f"{tag[:40]!r} is not a well-formed BCP 47 language tag"
            " (examples: fr, pt-BR, zh-Hant-TW)."
        )
        raise Problem(
            422,
            "invalid-language",
            "Invalid language tag",
            detail,
            errors=[{"field": field_name, "message": detail}],
        )
    subtags = candidate.split("-")
    spelled = [subtags[0]]
    after_singleton = False
    for subtag in subtags[1:]:
        # RFC 5646 §2.1.1: regions upper case, scripts title case, all else lower case,
        # except inside extensions and private use, which stay lower case.
        after_singleton = after_singleton or len(subtag) == 1
        if not after_singleton and len(subtag) == 2:
            subtag = subtag.upper()
        elif not after_singleton and len(subtag) == 4 and subtag.isalpha():
            subtag = subtag.title()
        spelled.append(subtag)
    return "-".join(spelled)
