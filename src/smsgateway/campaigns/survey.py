"""One pass over a campaign's CSV: what it would send, to whom, for how much.

The dry run answers this summary; the real run computes the same one to know
the credits to hold before anything is stored. Rows are read and judged in a
worker thread, ``batch`` at a time, and each batch's numbers are checked
against the opt-out and suspension list in one query, so a 100,000-row file
takes bounded memory and never blocks the event loop for long.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import BinaryIO

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from smsgateway.campaigns.csv_reader import BadRow, CampaignCsv, GoodRow, placeholders_in
from smsgateway.campaigns.schemas import (
    LISTED_ROWS,
    SAMPLE_ROWS,
    CampaignSummary,
    InvalidRow,
    SampleMessage,
    SkippedCounts,
    SkippedRow,
)
from smsgateway.models.phones import NumberState
from smsgateway.runtime import Runtime

Judged = tuple[GoodRow | BadRow, str | None]  # a row and, for a good one, why it is skipped


async def open_csv(source: BinaryIO, text: str, runtime: Runtime) -> CampaignCsv:
    """Read the header (in a thread) and check it against the text (422 problems)."""
    settings = runtime.settings
    return await asyncio.to_thread(
        CampaignCsv,
        source,
        text,
        pricing=runtime.pricing,
        default_region=settings.locale.default_region,
        allowed_types=settings.locale.allowed_types,
        smart=settings.templates.smart_encoding,
        max_rows=settings.campaigns.max_rows,
    )


async def judged_batches(
    session: AsyncSession,
    reader: CampaignCsv,
    size: int,
    countries: frozenset[str] = frozenset(),
) -> AsyncIterator[list[Judged]]:
    """The rows ``size`` at a time, each good one with its number's refusal (or None):
    opted out, suspended, or (``countries`` given) ``country_not_allowed``."""
    rows = reader.rows()
    while True:
        batch = await asyncio.to_thread(_take, rows, size)
        if not batch:
            return
        numbers = [row.to for row in batch if isinstance(row, GoodRow)]
        refusals = await number_refusals(session, numbers)
        yield [(row, _refusal(row, refusals, countries)) for row in batch]


def _refusal(
    row: GoodRow | BadRow, refusals: dict[str, str], countries: frozenset[str]
) -> str | None:
    if not isinstance(row, GoodRow):
        return None
    if countries and row.country not in countries:
        return "country_not_allowed"
    return refusals.get(row.to)


async def number_refusals(session: AsyncSession, numbers: list[str]) -> dict[str, str]:
    """``opted_out`` or ``suspended`` for the numbers that may not get marketing texts."""
    if not numbers:
        return {}
    states = await session.scalars(select(NumberState).where(NumberState.number.in_(numbers)))
    refusals: dict[str, str] = {}
    for state in states:
        if state.opted_out_at is not None:
            refusals[state.number] = "opted_out"
        elif state.suspended_at is not None:
            refusals[state.number] = "suspended"
    return refusals


async def survey(
    session: AsyncSession,
    runtime: Runtime,
    source: BinaryIO,
    text: str,
    countries: frozenset[str] = frozenset(),
) -> CampaignSummary:
    """Count, judge and price every row of ``source``; store nothing."""
    reader = await open_csv(source, text, runtime)
    tally = _Tally()
    size = runtime.settings.campaigns.batch_size
    async for batch in judged_batches(session, reader, size, countries):
        for row, refusal in batch:
            tally.add(row, refusal)
    layout = reader.layout
    return CampaignSummary(
        rows=tally.rows,
        recipients=tally.recipients,
        invalid=tally.invalid,
        skipped=SkippedCounts(
            opted_out=tally.skipped["opted_out"],
            suspended=tally.skipped["suspended"],
            country_not_allowed=tally.skipped["country_not_allowed"],
        ),
        segments=tally.segments,
        parts={str(k): v for k, v in sorted(tally.parts.items())},
        credits=tally.credits,
        cost=tally.cost,
        currency=runtime.pricing.currency,
        columns=list(layout.columns),
        placeholders=placeholders_in(text),
        delimiter=layout.delimiter,
        invalid_rows=tally.invalid_rows,
        skipped_rows=tally.skipped_rows,
        sample=tally.sample,
    )


class _Tally:
    """Running totals of a pass; keeps at most a few rows as examples."""

    def __init__(self) -> None:
        self.rows = self.recipients = self.invalid = self.segments = 0
        self.skipped: Counter[str] = Counter()
        self.parts: Counter[int] = Counter()
        self.credits = self.cost = Decimal(0)
        self.invalid_rows: list[InvalidRow] = []
        self.skipped_rows: list[SkippedRow] = []
        self.sample: list[SampleMessage] = []

    def add(self, row: GoodRow | BadRow, refusal: str | None) -> None:
        self.rows += 1
        if isinstance(row, BadRow):
            self.invalid += 1
            if len(self.invalid_rows) < LISTED_ROWS:
                self.invalid_rows.append(
                    InvalidRow(row=row.row, to=row.to, reason=row.reason, detail=row.detail)
                )
            return
        if refusal is not None:
            self.skipped[refusal] += 1
            if len(self.skipped_rows) < LISTED_ROWS:
                self.skipped_rows.append(
                    SkippedRow.model_validate({"row": row.row, "to": row.to, "reason": refusal})
                )
            return
        self.recipients += 1
        self.segments += row.parts.segments
        self.parts[row.parts.segments] += 1
        self.credits += row.credits
        self.cost += row.cost
        if len(self.sample) < SAMPLE_ROWS:
            self.sample.append(
                SampleMessage(
                    row=row.row,
                    to=row.to,
                    country=row.country,
                    text=row.parts.text,
                    encoding=row.parts.encoding.value,
                    segments=row.parts.segments,
                    credits=row.credits,
                    cost=row.cost,
                )
            )


def _take(rows: Iterator[GoodRow | BadRow], size: int) -> list[GoodRow | BadRow]:
    batch: list[GoodRow | BadRow] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            break
    return batch
