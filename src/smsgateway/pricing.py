"""What a message costs: credits per part by destination country, and their price.

OVHcloud bills credits per SMS part, and the number of credits for one part
depends on the destination country. The built-in table is one credit per part
everywhere at 0.07 EUR a credit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal


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
        if country is None:
            return self.default_credits_per_part
        return self.by_country.get(country.upper(), self.default_credits_per_part)

    def price(self, country: str | None, segments: int) -> Price:
        credits = self.credits_per_part(country) * segments
        cost = (credits * self.credit_price).quantize(Decimal("0.0001"), ROUND_HALF_UP)
        return Price(credits=credits, cost=cost)
