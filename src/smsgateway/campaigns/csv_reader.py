"""Reading a campaign's CSV one row at a time, and filling its ``#COLUMN#`` placeholders.

The CSV is read from a file object as a stream: a 100,000-row file is never
held in memory, only the row being read and a set of the numbers seen (to
drop repeats). Everything here is synchronous and pure CPU; the service runs
it in a thread, a slice of rows at a time, so the event loop stays free.

Format: UTF-8 (a byte-order mark is fine), the first line a header, fields
separated by ``;`` or ``,`` (whichever the header has more of). One column is
named ``number`` (any case); the others are free. OVHcloud's convention for
placeholders is kept: ``#NAME#`` in the text is the ``name`` column of the
row, matched without regard to case.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import BinaryIO

from smsgateway.encoding import SmsParts, analyse
from smsgateway.errors import Problem
from smsgateway.numbers import InvalidNumber, sendable
from smsgateway.pricing import Pricing

NUMBER_COLUMN = "number"
MAX_TEXT = 1600  # the longest text a direct send accepts, after filling placeholders
_PLACEHOLDER = re.compile(r"#([A-Za-z_][A-Za-z0-9_]*)#")
_DELIMITERS = (";", ",")


@dataclass(frozen=True, slots=True)
class Layout:
    """The header: its delimiter, its columns, and where the text's values come from."""

    delimiter: str
    columns: tuple[str, ...]
    number_index: int
    placeholders: dict[str, int]  # lower-cased placeholder name -> column index


@dataclass(frozen=True, slots=True)
class GoodRow:
    """A row that makes a message: its number, the filled text, its size and price."""

    row: int  # the row in a spreadsheet: the header is row 1
    to: str  # E.164
    country: str | None
    text: str
    parts: SmsParts
    credits: Decimal
    cost: Decimal


@dataclass(frozen=True, slots=True)
class BadRow:
    row: int
    to: str | None  # the number as written, when there was one
    reason: str
    detail: str


def placeholders_in(text: str) -> list[str]:
    """The placeholder names of ``text``, in order of first use."""
    return list(dict.fromkeys(m.group(1) for m in _PLACEHOLDER.finditer(text)))


def layout_for(header: list[str], delimiter: str, text: str) -> Layout:
    """Check the header against the text: a ``number`` column, a column per placeholder.

    Raises a 422 problem naming what is missing.
    """
    columns = tuple(name.strip() for name in header)
    index: dict[str, int] = {}
    for position, name in enumerate(columns):
        key = name.lower()
        if key in index:
            raise Problem(
                422,
                "csv-duplicate-column",
                "Column named twice",
                f"The CSV header names the column {name[:64]!r} twice.",
                column=name[:64],
            )
        index[key] = position
    if NUMBER_COLUMN not in index:
        raise Problem(
            422,
            "csv-missing-number",
            "No number column",
            "The CSV header needs a column named 'number' with the recipients' numbers.",
            columns=[c[:64] for c in columns[:50]],
        )
    placeholders: dict[str, int] = {}
    for name in placeholders_in(text):
        if name.lower() not in index:
            raise Problem(
                422,
                "unknown-placeholder",
                "Placeholder without a column",
                f"The text uses #{name}# but the CSV has no column {name!r}.",
                placeholder=name,
                columns=[c[:64] for c in columns[:50]],
            )
        placeholders[name.lower()] = index[name.lower()]
    return Layout(delimiter, columns, index[NUMBER_COLUMN], placeholders)


def fill(text: str, layout: Layout, fields: list[str]) -> str:
    """``text`` with each ``#COLUMN#`` replaced by the row's value (trimmed)."""
    return _PLACEHOLDER.sub(lambda m: fields[layout.placeholders[m.group(1).lower()]].strip(), text)


class CampaignCsv:
    """One pass over a campaign CSV: the layout, then each row judged and priced.

    ``rows()`` yields a ``GoodRow`` or a ``BadRow`` per data row (blank lines
    are skipped, not counted). A number seen on an earlier row makes a
    ``duplicate`` bad row, so nobody gets the campaign twice.
    """

    def __init__(
        self,
        source: BinaryIO,
        text: str,
        *,
        pricing: Pricing,
        default_region: str | None,
        smart: bool,
        max_rows: int,
        allowed_types: frozenset[str] = frozenset(),
    ) -> None:
        self._lines = _decoded_lines(source)
        first = next(self._lines, "")
        if not first.strip():
            raise Problem(422, "csv-empty", "Empty CSV", "The CSV has no header line.")
        delimiter = max(_DELIMITERS, key=first.count)
        try:
            header = next(csv.reader([first], delimiter=delimiter))
        except csv.Error as exc:
            raise _unreadable(1, str(exc)) from None
        self.layout = layout_for(header, delimiter, text)
        self._text = text
        self._pricing = pricing
        self._region = default_region
        self._allowed = allowed_types
        self._smart = smart
        self._max_rows = max_rows
        self._seen: set[int] = set()

    def rows(self) -> Iterator[GoodRow | BadRow]:
        reader = csv.reader(self._lines, delimiter=self.layout.delimiter)
        row = 1
        count = 0
        try:
            for fields in reader:
                row += 1
                if not any(field.strip() for field in fields):
                    continue
                count += 1
                if count > self._max_rows:
                    raise Problem(
                        422,
                        "csv-too-many-rows",
                        "Too many rows",
                        f"A campaign may have at most {self._max_rows} rows.",
                        max_rows=self._max_rows,
                    )
                yield self._judge(row, fields)
        except csv.Error as exc:
            raise _unreadable(row, str(exc)) from None

    def _judge(self, row: int, fields: list[str]) -> GoodRow | BadRow:
        layout = self.layout
        if len(fields) != len(layout.columns):
            given = (
                fields[layout.number_index].strip()[:32]
                if len(fields) > layout.number_index
                else None
            )
            detail = f"{len(fields)} fields where the header has {len(layout.columns)}"
            return BadRow(row, given or None, "wrong_field_count", detail)
        raw = fields[layout.number_index].strip()
        if not raw:
            return BadRow(row, None, "no_phone", "the number column is empty")
        try:
            number = sendable(raw, self._region, self._allowed)
        except InvalidNumber as exc:
            return BadRow(row, raw[:32], exc.reason, str(exc))
        key = int(number.e164[1:])
        if key in self._seen:
            return BadRow(row, number.e164, "duplicate", "the number is on an earlier row")
        self._seen.add(key)
        text = fill(self._text, layout, fields)
        if not text.strip():
            return BadRow(row, number.e164, "empty_text", "the text is empty once filled in")
        if len(text) > MAX_TEXT:
            detail = f"the filled text has {len(text)} characters (at most {MAX_TEXT})"
            return BadRow(row, number.e164, "text_too_long", detail)
        # Campaign texts go with OVHcloud's STOP mention, which is counted in the parts.
        parts = analyse(text, stop_clause=True, smart=self._smart)
        price = self._pricing.price(number.country, parts.segments)
        return GoodRow(row, number.e164, number.country, text, parts, price.credits, price.cost)


def _decoded_lines(source: BinaryIO) -> Iterator[str]:
    """The file's lines as text, decoded one at a time (a leading BOM is dropped)."""
    for line_number, raw in enumerate(source, start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise _unreadable(line_number, "it is not UTF-8 text") from None
        yield line.removeprefix("\ufeff") if line_number == 1 else line


def _unreadable(row: int, why: str) -> Problem:
    return Problem(
        422,
        "csv-unreadable",
        "Unreadable CSV",
        f"Line {row} cannot be read: {why}. Send UTF-8 text, one row per line.",
        row=row,
    )
