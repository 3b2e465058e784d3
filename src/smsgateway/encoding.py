"""SMS encoding detection and part counting.

This module is the single place that decides how a text travels over SMS, because the
encoding drives the price: OVHcloud bills per part, and one character outside the
GSM 03.38 alphabet switches the whole message to UCS-2, cutting a part from 160 to 70
characters. Everything here is pure and table driven (tables are built at import).

Counting rules, as handsets and operators apply them:

* GSM-7: 160 septets in a single part, 153 per part once concatenated (the user data
  header takes the rest). Extension-table characters cost two septets (escape + char)
  and an escape pair is never split across parts, so a part may end one septet short.
* UCS-2: 70 UTF-16 code units single, 67 per concatenated part. Characters outside the
  BMP (most emoji) take two units and a surrogate pair is never split across parts.

Parts are cut on code points, not grapheme clusters: a combining accent or an emoji
ZWJ sequence may straddle two parts, as it does on real handsets.
"""

from dataclasses import dataclass
from enum import StrEnum


class Encoding(StrEnum):
    """Data coding of a whole message: one non-GSM character makes it all UCS-2."""

    GSM7 = "gsm7"
    UCS2 = "ucs2"


STOP_CLAUSE_LENGTH = 11
"""Length of the opt-out mention OVHcloud appends when ``noStopClause`` is false."""

STOP_CLAUSE_EXAMPLE = "\nSTOP 12345"
"""Stand-in for that mention: newline, ``STOP``, space, five-digit short number.

Every character is in the GSM basic table, so it costs 11 septets or 11 UCS-2 units
and never changes the message's encoding. The real short number is chosen by OVHcloud.
"""

GSM7_SINGLE = 160
GSM7_CONCATENATED = 153
UCS2_SINGLE = 70
UCS2_CONCATENATED = 67

# GSM 03.38 default alphabet, basic table in code order 0x00-0x7F, without 0x1B
# (the escape to the extension table, which is not a character a text can contain).
_GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ"
    " !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# Extension table: each is sent as escape + char, i.e. two septets.
_GSM7_EXTENSION = frozenset("\f^{}\\[]~|€")
_GSM7_ALL = _GSM7_BASIC | _GSM7_EXTENSION

_BMP_LAST = 0xFFFF


@dataclass(frozen=True, slots=True)
class SmsParts:
    """What a message costs, and the text that was actually counted.

    ``characters`` and ``text`` exclude the STOP mention (it is added by OVHcloud, not
    sent by us); ``units`` and ``segments`` include it when it was asked for. Empty text
    counts as one segment of zero units: an SMS is billed per part, never fewer than one.
    """

    encoding: Encoding
    characters: int
    units: int
    segments: int
    per_segment: int
    text: str


def is_gsm7(text: str) -> bool:
    """True if every character is in the GSM 03.38 basic or extension table."""
    return _GSM7_ALL.issuperset(text)


def gsm7_septets(text: str) -> int:
    """Septets needed to send ``text`` in GSM-7; extension characters count two.

    Raises ``ValueError`` naming the first character that has no GSM-7 encoding, so a
    caller that assumed GSM-7 fails loudly instead of under-counting.
    """
    septets = 0
    for index, char in enumerate(text):
        if char in _GSM7_BASIC:
            septets += 1
        elif char in _GSM7_EXTENSION:
            septets += 2
        else:
            raise ValueError(f"{char!r} (U+{ord(char):04X}) at index {index} is not GSM-7")
    return septets


# "Smart encoding": typographic punctuation that word processors and phones insert
# silently and that has an unambiguous GSM look-alike. Letters are deliberately absent:
# ê, ç, ł... carry meaning, and swapping them would change words, not just glyphs.
_LOOKALIKES: dict[str, str] = {
    # single quotes, primes and angle quotes -> apostrophe
    **dict.fromkeys("\u2018\u2019\u201a\u201b\u2032\u2039\u203a", "'"),
    # double quotes, guillemets and double prime -> straight double quote
    **dict.fromkeys("\u201c\u201d\u201e\u201f\u00ab\u00bb\u2033", '"'),
    # hyphen, non-breaking hyphen, figure/en/em dash, horizontal bar, minus, bullets
    **dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212\u2022\u2043", "-"),
    # no-break, en/em/thin/hair and other fixed-width spaces, ideographic space
    **dict.fromkeys("\u00a0\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008", " "),
    **dict.fromkeys("\u2009\u200a\u202f\u205f\u3000", " "),
    # invisible: zero-width space/non-joiner/joiner, word joiner, BOM, soft hyphen
    **dict.fromkeys("\u200b\u200c\u200d\u2060\ufeff\u00ad", ""),
    "\u2026": "...",  # horizontal ellipsis
    "\u02c6": "^",  # modifier circumflex
    "\u02dc": "~",  # small tilde
    "\u2024": ".",  # one dot leader
    "\u2044": "/",  # fraction slash
}
_LOOKALIKE_TABLE = str.maketrans(_LOOKALIKES)


def replace_lookalikes(text: str) -> str:
    """Replace typographic punctuation and spaces by their GSM-7 look-alikes.

    The result may still need UCS-2 (letters such as ê are never touched); see
    :func:`analyse` for when the replacement is actually used.
    """
    return text.translate(_LOOKALIKE_TABLE)


def analyse(text: str, *, stop_clause: bool = False, smart: bool = False) -> SmsParts:
    """Encoding, size and number of parts of ``text`` as OVHcloud will send it.

    ``stop_clause`` adds the 11-character STOP mention before counting parts, as OVHcloud
    does when ``noStopClause`` is false. ``smart`` applies :func:`replace_lookalikes`
    only when that makes the whole text GSM-7: if a letter keeps it UCS-2 anyway, the
    replacement would save nothing (UCS-2 carries the originals at the same cost) and
    could damage it (removing a ZWJ breaks emoji), so the text is kept as written.
    """
    if smart:
        text = _smart(text)
    encoding = Encoding.GSM7 if is_gsm7(text) else Encoding.UCS2
    counted = text + STOP_CLAUSE_EXAMPLE if stop_clause else text
    costs = _costs(counted, encoding)
    segments = len(_part_ends(costs, encoding))
    single, concatenated = _limits(encoding)
    return SmsParts(
        encoding=encoding,
        characters=len(text),
        units=sum(costs),
        segments=segments,
        per_segment=single if segments == 1 else concatenated,
        text=text,
    )


def split_parts(text: str, *, stop_clause: bool = False) -> list[str]:
    """The parts a handset would receive, in order; ``"".join`` gives the text back.

    With ``stop_clause`` the parts are those of ``text + STOP_CLAUSE_EXAMPLE``: the
    mention is appended by OVHcloud, so the last part shows the placeholder rather than
    the real short number. Empty text gives ``[""]``, matching its one counted segment.
    """
    if stop_clause:
        text += STOP_CLAUSE_EXAMPLE
    encoding = Encoding.GSM7 if is_gsm7(text) else Encoding.UCS2
    parts: list[str] = []
    start = 0
    for end in _part_ends(_costs(text, encoding), encoding):
        parts.append(text[start:end])
        start = end
    return parts


def _smart(text: str) -> str:
    """The look-alike replacement if it makes ``text`` GSM-7, else ``text`` unchanged."""
    replaced = replace_lookalikes(text)
    return replaced if is_gsm7(replaced) else text


def _limits(encoding: Encoding) -> tuple[int, int]:
    """Units per part for a single-part and for a concatenated message."""
    if encoding is Encoding.GSM7:
        return GSM7_SINGLE, GSM7_CONCATENATED
    return UCS2_SINGLE, UCS2_CONCATENATED


def _costs(text: str, encoding: Encoding) -> list[int]:
    """Units taken by each code point; a code point is the unit that is never split."""
    if encoding is Encoding.GSM7:
        return [2 if char in _GSM7_EXTENSION else 1 for char in text]
    return [2 if ord(char) > _BMP_LAST else 1 for char in text]


def _part_ends(costs: list[int], encoding: Encoding) -> list[int]:
    """Exclusive end index of each part, filling parts greedily like handsets do.

    A code point that does not fit in what is left of a part starts the next one, which
    is why escape pairs and surrogate pairs can add a part over a plain division.
    """
    single, concatenated = _limits(encoding)
    if sum(costs) <= single:
        return [len(costs)]
    ends: list[int] = []
    used = 0
    for index, cost in enumerate(costs):
        if used + cost > concatenated:
            ends.append(index)
            used = 0
        used += cost
    ends.append(len(costs))
    return ends
