"""Reading a campaign CSV: header, placeholders, and how each row is judged."""

from __future__ import annotations

import io
from decimal import Decimal

import pytest

from smsgateway.campaigns.csv_reader import BadRow, CampaignCsv, GoodRow, placeholders_in
from smsgateway.errors import Problem
from smsgateway.pricing import Pricing

PRICING = Pricing(by_country={"US": Decimal("2.5")})


def _read(
    csv: str | bytes, text: str = "Hi #NAME#", *, max_rows: int = 100
) -> list[GoodRow | BadRow]:
    data = csv.encode() if isinstance(csv, str) else csv
    reader = CampaignCsv(
        io.BytesIO(data), text, pricing=PRICING, default_region=None, smart=True, max_rows=max_rows
    )
    return list(reader.rows())


def _problem(csv: str | bytes, text: str = "Hi #NAME#", **kwargs: int) -> Problem:
    with pytest.raises(Problem) as raised:
        _read(csv, text, **kwargs)
    assert raised.value.status == 422
    return raised.value


def test_placeholders_are_hash_delimited_names() -> None:
    assert placeholders_in("Hi #NAME#, #city# #NAME# #2# #not closed") == ["NAME", "city"]


@pytest.mark.parametrize("delimiter", [";", ","])
def test_either_delimiter_and_placeholders_without_regard_to_case(delimiter: str) -> None:
    csv = f"Number{delimiter}Name{delimiter}City\n+33601020304{delimiter}Anna{delimiter}Lyon\n"
    (row,) = _read(csv, "Hi #name#, see you in #CITY#")
    assert isinstance(row, GoodRow)
    assert (row.row, row.to, row.country, row.text) == (
        2,
        "+33601020304",
        "FR",
        "Hi Anna, see you in Lyon",
    )


def test_a_byte_order_mark_and_quoted_fields_are_read() -> None:
    csv = '\ufeffnumber,name\r\n"+33 6 01 02 03 04","Smith, Anna"\r\n'
    (row,) = _read(csv)
    assert isinstance(row, GoodRow)
    assert (row.to, row.text) == ("+33601020304", "Hi Smith, Anna")


def test_the_stop_mention_is_counted_in_the_parts_and_the_price() -> None:
    csv = "number;name\n+33601020304;" + "x" * 147 + "\n+12025550123;Bob\n"
    long, short = _read(csv)
    assert isinstance(long, GoodRow) and isinstance(short, GoodRow)
    # 150 characters fit one part alone; with OVHcloud's 11-character STOP mention they do not.
    assert (len(long.text), long.parts.segments, long.credits) == (150, 2, Decimal(2))
    assert (short.parts.segments, short.credits, short.cost) == (
        1,
        Decimal("2.5"),
        Decimal("0.175"),
    )


def test_bad_rows_are_reported_with_their_row_and_reason() -> None:
    csv = (
        "number;name\n"
        "+33601020304;Anna\n"
        "\n"  # blank lines are skipped, not counted
        "+33 1;Bob\n"
        ";Carl\n"
        "+33601020304;Anna again\n"
        "+33611223344\n"
        "+33622334455;   \n"
    )
    rows = _read(csv, "#NAME#")
    assert [(r.row, r.reason) for r in rows if isinstance(r, BadRow)] == [
        (4, "invalid_phone"),
        (5, "no_phone"),
        (6, "duplicate"),
        (7, "wrong_field_count"),
        (8, "empty_text"),
    ]
    assert [r.row for r in rows if isinstance(r, GoodRow)] == [2]
    duplicate = next(r for r in rows if isinstance(r, BadRow) and r.reason == "duplicate")
    assert duplicate.to == "+33601020304"


def test_a_filled_text_over_1600_characters_is_a_bad_row() -> None:
    (row,) = _read("number;name\n+33601020304;" + "x" * 1600 + "\n")
    assert isinstance(row, BadRow) and row.reason == "text_too_long"


def test_the_number_column_is_required() -> None:
    problem = _problem("phone;name\n+33601020304;Anna\n")
    assert problem.slug == "csv-missing-number"


def test_a_placeholder_without_a_column_is_named() -> None:
    problem = _problem("number;name\n+33601020304;Anna\n", "Hi #NAME#, -20% in #CITY#")
    assert problem.slug == "unknown-placeholder"
    assert problem.extra["placeholder"] == "CITY"
    assert "#CITY#" in (problem.detail or "")


@pytest.mark.parametrize(
    ("csv", "slug"),
    [
        ("", "csv-empty"),
        ("number;Name;NAME\n", "csv-duplicate-column"),
        (b"number;name\n+33601020304;Ren\xe9\n", "csv-unreadable"),
    ],
)
def test_unreadable_files_are_refused(csv: str | bytes, slug: str) -> None:
    assert _problem(csv).slug == slug


def test_more_rows_than_allowed_are_refused() -> None:
    csv = "number;name\n" + "".join(f"+3360102030{i};N\n" for i in range(4))
    assert _problem(csv, max_rows=3).slug == "csv-too-many-rows"
    assert len(_read(csv, max_rows=4)) == 4
