"""Reading replies: keywords in English and French, codes, noise ignored."""

from __future__ import annotations

import pytest

from smsgateway.replies.keywords import Keyword, normalise, read


@pytest.mark.parametrize(
    ("text", "keyword", "code"),
    [
        ("YES", Keyword.YES, None),
        ("yes", Keyword.YES, None),
        ("  Yes!  ", Keyword.YES, None),
        ("Oui", Keyword.YES, None),
        ("oui merci", Keyword.YES, None),
        ("O", Keyword.YES, None),
        ("y", Keyword.YES, None),
        ("Non.", Keyword.NO, None),
        ("n", Keyword.NO, None),
        ("NO K7", Keyword.NO, "K7"),
        ("oui k7", Keyword.YES, "K7"),
        ("Oui, K7 !", Keyword.YES, "K7"),
        ("k7 oui", Keyword.YES, "K7"),
        ("OUI-K7", Keyword.YES, "K7"),
        ("ouik7", Keyword.YES, "K7"),
        ("STOP", Keyword.STOP, None),
        ("Stop.", Keyword.STOP, None),
        ("arrêt", Keyword.STOP, None),
        ("ARRET", Keyword.STOP, None),
        ("stopp", Keyword.STOP, None),
        ("Désabonner", Keyword.STOP, None),
        ("unsubscribe", Keyword.STOP, None),
        ("START", Keyword.START, None),
        ("unstop", Keyword.START, None),
        ("cancel", None, None),
        ("maybe later", None, None),
        ("", None, None),
        ("👍", None, None),
        ("yes please", Keyword.YES, None),
    ],
)
def test_reads_keyword_and_code(text: str, keyword: Keyword | None, code: str | None) -> None:
    reading = read(text)
    assert (reading.keyword, reading.code) == (keyword, code)


def test_normalise_strips_accents_case_and_punctuation() -> None:
    assert normalise("  Désabonner, s'il vous plaît !") == "DESABONNER S IL VOUS PLAIT"
