"""What a message costs: credits per part by destination country, and their price.

OVHcloud bills credits per SMS part, and the number of credits for one part
depends on the destination country. The built-in table is one credit per part
everywhere at 0.07 EUR a credit; ``SMSGW_PRICING_FILE`` replaces it with a JSON
table (see ``pricing.example.json``):

    {"currency": "EUR", "credit_price": 0.07, "default_credits_per_part": 1,
     "countries": {"FR": 1, "PL": 1.5, "US": 2.5}}

Money is ``Decimal`` throughout (the file's numbers are read as decimals, never as
binary floats), and a cost is rounded half-up to 4 decimals, the precision stored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Annotated

import phonenumbers
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

COST_PRECISION = Decimal("0.0001")


@dataclass(frozen=True, slots=True)
class Price:
    credits: Decimal
    cost: Decimal


@dataclass(frozen=True, slots=True)
class Pricing:
    default_credits_per_part: Decimal = Decimal("1")
    credit_price: Decimal = Decimal("0.07")
    currency: str = "EUR"
    by_country: dict[str, Decimal] = field(default_factory=dict)

    def credits_per_part(self, country: str | None) -> Decimal:
        """Credits for one part to ``country`` (ISO 3166-1 alpha-2); unknown: the default."""
        if country is None:
            return self.default_credits_per_part
        return self.by_country.get(country.upper(), self.default_credits_per_part)

    def price(self, country: str | None, segments: int) -> Price:
        """Credits and cost of a message of ``segments`` parts to ``country``."""
        credits = self.credits_per_part(country) * segments
        cost = (credits * self.credit_price).quantize(COST_PRECISION, ROUND_HALF_UP)
        return Price(credits=credits, cost=cost)


class PricingFileError(RuntimeError):
    """The pricing file cannot be read or is invalid; the service refuses to start."""


NonNegative = Annotated[Decimal, Field(ge=0, max_digits=14, decimal_places=4)]


class PricingTable(BaseModel):
    """The JSON pricing file. Omitted fields take the built-in defaults."""

    model_config = ConfigDict(extra="forbid")

    currency: str = Field(default="EUR", pattern=r"^[A-Z]{3}$", description="ISO 4217 code")
    credit_price: NonNegative = Decimal("0.07")
    default_credits_per_part: NonNegative = Decimal("1")
    countries: dict[str, NonNegative] = Field(
        default_factory=dict, description="Credits per part by ISO 3166-1 alpha-2 country"
    )

    @field_validator("countries")
    @classmethod
    def _known_countries(cls, countries: dict[str, Decimal]) -> dict[str, Decimal]:
        # A code phonenumbers never returns (UK instead of GB) would silently never
        # match a number, and those messages would be priced at the default rate.
        normalised: dict[str, Decimal] = {}
        for code, credits in countries.items():
            country = code.strip().upper()
            if country not in phonenumbers.SUPPORTED_REGIONS:
                raise ValueError(f"{code!r} is not an ISO 3166-1 alpha-2 country with numbers")
            normalised[country] = credits
        return normalised

    def pricing(self) -> Pricing:
        return Pricing(
            default_credits_per_part=self.default_credits_per_part,
            credit_price=self.credit_price,
            currency=self.currency,
            by_country=dict(self.countries),
        )


def load_pricing(path: Path) -> Pricing:
    """Read and validate a pricing file; raise ``PricingFileError`` saying what is wrong."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"), parse_float=Decimal)
    except OSError as exc:
        raise PricingFileError(f"pricing file {path}: cannot be read ({exc.strerror})") from exc
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise PricingFileError(f"pricing file {path}: not valid JSON ({exc})") from exc
    try:
        return PricingTable.model_validate(raw).pricing()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'file'}: "
            + error["msg"].removeprefix("Value error, ")
            for error in exc.errors()
        )
        raise PricingFileError(f"pricing file {path}: {problems}") from exc
