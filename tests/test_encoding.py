"""SMS encoding and part counting: the hard cases that decide what a message costs."""

import itertools
import random

import pytest

from smsgateway.encoding import (
    STOP_CLAUSE_EXAMPLE,
    STOP_CLAUSE_LENGTH,
    Encoding,
    SmsParts,
    analyse,
    gsm7_septets,
    is_gsm7,
    replace_lookalikes,
    split_parts,
)

GSM7 = Encoding.GSM7
UCS2 = Encoding.UCS2

# The real GSM 03.38 tables, written independently of the module under test.
BASIC_TABLE = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ"
    " !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
EXTENSION_TABLE = "\f^{}\\[]~|€"

EMOJI = "\U0001f600"  # grinning face, outside the BMP: a surrogate pair in UTF-16
RSQUO = "\u2019"  # right single quotation mark, what phones type for an apostrophe
EN_DASH = "\u2013"
ELLIPSIS = "\u2026"
NBSP = "\u00a0"
FRENCH = f"C{RSQUO}est réservé «{NBSP}demain{NBSP}» {EN_DASH} à 9h{ELLIPSIS} "


def units_of(part: str, encoding: Encoding = GSM7) -> int:
    """Independent unit count: septets for GSM-7, UTF-16 code units for UCS-2."""
    if encoding is GSM7:
        return sum(2 if char in EXTENSION_TABLE else 1 for char in part)
    return len(part.encode("utf-16-le")) // 2


CASES: list[tuple[str, str, bool, Encoding, int, int]] = [
    # id, text, stop_clause, encoding, units, segments
    ("empty", "", False, GSM7, 0, 1),
    ("160 a", "a" * 160, False, GSM7, 160, 1),
    ("161 a", "a" * 161, False, GSM7, 161, 2),
    ("306 a", "a" * 306, False, GSM7, 306, 2),
    ("307 a", "a" * 307, False, GSM7, 307, 3),
    ("159 a + euro", "a" * 159 + "€", False, GSM7, 161, 2),
    ("152 a + euro, short", "a" * 152 + "€", False, GSM7, 154, 1),
    ("escape pair pushed to part 2", "a" * 152 + "€" + "a" * 10, False, GSM7, 164, 2),
    ("escape pair adds a part", "a" * 152 + "€" + "a" * 152, False, GSM7, 306, 3),
    ("extension table", EXTENSION_TABLE, False, GSM7, 20, 1),
    ("basic table", BASIC_TABLE, False, GSM7, 127, 1),
    ("70 ê", "ê" * 70, False, UCS2, 70, 1),
    ("71 ê", "ê" * 71, False, UCS2, 71, 2),
    ("134 ê", "ê" * 134, False, UCS2, 134, 2),
    ("135 ê", "ê" * 135, False, UCS2, 135, 3),
    ("emoji fits", "ê" * 66 + EMOJI, False, UCS2, 68, 1),
    ("emoji over 70", "ê" * 69 + EMOJI, False, UCS2, 71, 2),
    ("surrogate pair pushed", "ê" * 66 + EMOJI + "ê" * 10, False, UCS2, 78, 2),
    ("surrogate pair adds a part", "ê" * 66 + EMOJI + "ê" * 66, False, UCS2, 134, 3),
    ("emoji alone", EMOJI, False, UCS2, 2, 1),
    ("GSM accents", "é è à ù É Ç", False, GSM7, 11, 1),
    ("158 a + euro ends at 160", "a" * 158 + "€", False, GSM7, 160, 1),
    ("160 French GSM accents", "éèàù" * 40, False, GSM7, 160, 1),
    ("one ê makes 160 chars UCS-2", "é" * 159 + "ê", False, UCS2, 160, 3),
    ("69 a + ê fits 70", "a" * 69 + "ê", False, UCS2, 70, 1),
    ("70 a + ê over 70", "a" * 70 + "ê", False, UCS2, 71, 2),
    ("backtick is not GSM", "`", False, UCS2, 1, 1),
    ("stop on empty", "", True, GSM7, 11, 1),
    ("stop fits", "a" * 149, True, GSM7, 160, 1),
    ("stop pushes to 2", "a" * 150, True, GSM7, 161, 2),
    ("stop fits ucs2", "ê" * 59, True, UCS2, 70, 1),
    ("stop pushes ucs2 to 2", "ê" * 60, True, UCS2, 71, 2),
]


@pytest.mark.parametrize(
    ("text", "stop_clause", "encoding", "units", "segments"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_analyse_hard_cases(
    text: str, stop_clause: bool, encoding: Encoding, units: int, segments: int
) -> None:
    parts = analyse(text, stop_clause=stop_clause)
    assert (parts.encoding, parts.units, parts.segments) == (encoding, units, segments)
    assert parts.characters == len(text)
    assert parts.text == text
    assert len(split_parts(text, stop_clause=stop_clause)) == segments


def test_per_segment_follows_single_or_concatenated() -> None:
    assert analyse("a" * 160).per_segment == 160
    assert analyse("a" * 161).per_segment == 153
    assert analyse("ê" * 70).per_segment == 70
    assert analyse("ê" * 71).per_segment == 67


def test_empty_text_is_one_empty_part() -> None:
    empty = SmsParts(GSM7, characters=0, units=0, segments=1, per_segment=160, text="")
    assert analyse("") == empty
    assert split_parts("") == [""]


@pytest.mark.parametrize("char", list("éèàùìòÇ"))
def test_french_accents_in_gsm_table_stay_gsm7(char: str) -> None:
    assert is_gsm7(f"Livr{char}")
    assert analyse(f"Livr{char}").encoding is GSM7


@pytest.mark.parametrize("char", list("êçâîôûœëïÿ"))
def test_french_accents_outside_gsm_table_force_ucs2(char: str) -> None:
    assert not is_gsm7(f"Livr{char}")
    assert analyse(f"Livr{char}").encoding is UCS2


def test_gsm7_septets_counts_escape_pairs_and_rejects_non_gsm() -> None:
    assert gsm7_septets("a€{") == 5
    assert gsm7_septets("") == 0
    with pytest.raises(ValueError, match=r"U\+00EA"):
        gsm7_septets("Fenêtre")


def test_stop_clause_constant_is_eleven_gsm_characters() -> None:
    assert len(STOP_CLAUSE_EXAMPLE) == STOP_CLAUSE_LENGTH == 11
    assert gsm7_septets(STOP_CLAUSE_EXAMPLE) == 11
    assert STOP_CLAUSE_EXAMPLE.startswith("\nSTOP ")


def test_stop_clause_is_counted_but_not_part_of_text() -> None:
    info = analyse("a" * 150, stop_clause=True)
    assert (info.characters, info.text) == (150, "a" * 150)
    parts = split_parts("a" * 150, stop_clause=True)
    # 161 septets: part 1 is full at 153, so the mention itself straddles the two parts.
    assert parts == ["a" * 150 + "\nST", "OP 12345"]


def test_escape_pair_never_split_across_gsm_parts() -> None:
    parts = split_parts("a" * 152 + "€" + "a" * 10)
    assert parts == ["a" * 152, "€" + "a" * 10]
    assert [units_of(part) for part in parts] == [152, 12]
    assert parts[0][-1] not in EXTENSION_TABLE  # no dangling escape at the end of part 1


def test_escape_pair_that_adds_a_part() -> None:
    parts = split_parts("a" * 152 + "€" + "a" * 152)
    assert [units_of(part) for part in parts] == [152, 153, 1]
    assert parts[1].startswith("€")


def test_surrogate_pair_never_split_across_ucs2_parts() -> None:
    text = "ê" * 69 + EMOJI
    parts = split_parts(text)
    assert parts == ["ê" * 67, "êê" + EMOJI]
    assert "".join(parts) == text
    for part in parts:
        part.encode("utf-16-le")  # raises on a lone surrogate
        assert units_of(part, UCS2) <= 67


def test_surrogate_pair_that_adds_a_part() -> None:
    parts = split_parts("ê" * 66 + EMOJI + "ê" * 66)
    assert [units_of(part, UCS2) for part in parts] == [66, 67, 1]
    assert parts[1].startswith(EMOJI)


def test_replace_lookalikes_punctuation_and_spaces() -> None:
    text = (
        "\u2018a\u2019 \u201cb\u201d \u00abc\u00bb \u2032\u2033 "
        "x\u2013y\u2014z\u2212w\u2010v\u2011u \u2022 fin\u2026"
        "\u00a0|\u202f|\u2009|\u3000|"
    )
    expected = '\'a\' "b" "c" \'" x-y-z-w-v-u - fin... | | | |'
    assert replace_lookalikes(text) == expected
    assert is_gsm7(expected)


def test_replace_lookalikes_removes_invisible_characters() -> None:
    assert replace_lookalikes("ré\u00adser\u200bvé\u200d\u200c\u2060\ufeff") == "réservé"


def test_replace_lookalikes_never_touches_letters() -> None:
    letters = "êçâîôûœëïłñÑßΩ"
    assert replace_lookalikes(letters) == letters


def test_smart_encoding_turns_french_punctuation_into_gsm7_with_fewer_parts() -> None:
    text = FRENCH * 3
    plain = analyse(text)
    smart = analyse(text, smart=True)
    assert plain.encoding is UCS2
    assert smart.encoding is GSM7
    assert smart.segments < plain.segments
    assert smart.text == replace_lookalikes(text)
    assert smart.text.startswith('C\'est réservé " demain " - à 9h...')
    assert smart.characters == len(smart.text)


def test_smart_encoding_keeps_text_that_stays_ucs2() -> None:
    text = f"La fen{'ê'}tre{RSQUO}s ok {ELLIPSIS}"
    smart = analyse(text, smart=True)
    assert smart.encoding is UCS2
    assert "ê" in smart.text
    assert smart.text == text  # replacing punctuation would save nothing here
    assert smart == analyse(text)


def test_smart_encoding_on_gsm7_text_changes_nothing() -> None:
    assert analyse("Bonjour à 9h", smart=True) == analyse("Bonjour à 9h")


ALPHABET = "aZ9 \n@€{}^|~\\[]\fé€Ç" + "êç" + EMOJI + RSQUO + "\U0001f44d"


@pytest.mark.parametrize("seed", range(5))
def test_split_parts_roundtrips_and_fits(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(300):
        size = rng.choice((rng.randint(0, 20), rng.randint(140, 180), rng.randint(0, 500)))
        # Mostly-GSM texts stay GSM-7; a sprinkling of the tail characters makes UCS-2.
        pool = ALPHABET[:19] if rng.random() < 0.5 else ALPHABET
        text = "".join(rng.choice(pool) for _ in range(size))
        stop = rng.random() < 0.3
        parts = split_parts(text, stop_clause=stop)
        info = analyse(text, stop_clause=stop)

        assert "".join(parts) == text + (STOP_CLAUSE_EXAMPLE if stop else "")
        assert len(parts) == info.segments
        assert sum(units_of(part, info.encoding) for part in parts) == info.units
        limit = (160 if info.encoding is GSM7 else 70) if len(parts) == 1 else info.per_segment
        assert info.per_segment == limit
        for part in parts:
            part.encode("utf-16-le")  # no lone surrogate
            assert units_of(part, info.encoding) <= limit
            assert part or text + (STOP_CLAUSE_EXAMPLE if stop else "") == ""
        # Greedy filling: a part is only closed when the next character did not fit.
        for part, following in itertools.pairwise(parts):
            assert units_of(part + following[0], info.encoding) > limit
