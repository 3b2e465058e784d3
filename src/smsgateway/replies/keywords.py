"""Reading a reply: case, spaces, punctuation and accents do not matter.

The keyword is the first word; a per-request code (a letter and a digit,
e.g. ``K7``) may come before or after it. Keywords, English and French:

==========  =================================================================
yes         YES, Y, OUI, O, OK, YEP, OUAIS, JA, SI
no          NO, N, NON, NOPE, NEIN
stop        STOP, STOPP, STOPALL, ARRET, ARRETER, ARRETE, UNSUBSCRIBE,
            DESABONNER, DESINSCRIRE, DESINSCRIPTION
start       START, UNSTOP, RESUME, REPRENDRE, ABONNER
==========  =================================================================

``CANCEL``, ``END`` and ``QUIT`` are deliberately not STOP words: an offeror
answering a booking ("cancel") must not lose every SMS by accident.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum


class Keyword(StrEnum):
    YES = "yes"
    NO = "no"
    STOP = "stop"
    START = "start"


_WORDS: dict[str, Keyword] = {
    **dict.fromkeys(["YES", "Y", "OUI", "O", "OK", "YEP", "OUAIS", "JA", "SI"], Keyword.YES),
    **dict.fromkeys(["NO", "N", "NON", "NOPE", "NEIN"], Keyword.NO),
    **dict.fromkeys(
        [
            "STOP",
            "STOPP",
            "STOPALL",
            "ARRET",
            "ARRETER",
            "ARRETE",
            "UNSUBSCRIBE",
            "DESABONNER",
            "DESINSCRIRE",
            "DESINSCRIPTION",
        ],
        Keyword.STOP,
    ),
    **dict.fromkeys(["START", "UNSTOP", "RESUME", "REPRENDRE", "ABONNER"], Keyword.START),
}

# Codes avoid letters and digits that look alike (I/1, O/0, S/5, Z/2).
CODE_LETTERS = "ABCDEFGHJKLMNPQRTUVWXY"
CODE_DIGITS = "346789"
_CODE = re.compile(rf"^[{CODE_LETTERS}][{CODE_DIGITS}]$")


@dataclass(frozen=True, slots=True)
class Reading:
    keyword: Keyword | None
    code: str | None
    normalised: str


def normalise(text: str) -> str:
    """Upper case, accents and punctuation removed, spaces collapsed."""
    decomposed = unicodedata.normalize("NFKD", text)
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    letters = re.sub(r"[^0-9A-Za-z]+", " ", bare)
    return " ".join(letters.upper().split())


def read(text: str) -> Reading:
    """The keyword and the code a reply carries, if any.

    ``"Oui, K7 !"``, ``"k7 oui"`` and ``"OUI-K7"`` all read as (yes, K7);
    ``"OUIK7"`` too, since phones' autocorrect often glues them.
    """
    words = normalise(text).split()
    if not words:
        return Reading(None, None, "")
    first = words[0]
    keyword = _WORDS.get(first)
    code = None
    if keyword is None and _CODE.match(first) and len(words) > 1:
        keyword, rest = _WORDS.get(words[1]), words[2:]
        code = first
    elif keyword is None:
        keyword, code = _glued(first)
        rest = words[1:]
    else:
        rest = words[1:]
    if code is None and rest and _CODE.match(rest[0]):
        code = rest[0]
    return Reading(keyword, code, " ".join(words))


def _glued(word: str) -> tuple[Keyword | None, str | None]:
    if len(word) > 2 and _CODE.match(word[-2:]):
        keyword = _WORDS.get(word[:-2])
        if keyword in (Keyword.YES, Keyword.NO):
            return keyword, word[-2:]
    return None, None
