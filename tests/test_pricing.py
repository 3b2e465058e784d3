"""Pricing: the built-in table, pricing files, and what a bad file does at start."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from smsgateway.config import PricingSettings, Settings
from smsgateway.pricing import Pricing, PricingFileError, load_pricing
from smsgateway.runtime import build_pricing

EXAMPLE = Path(__file__).resolve().parents[1] / "pricing.example.json"


def write(tmp_path: Path, content: Any) -> Path:
    path = tmp_path / "pricing.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content), "utf-8")
    return path


def test_built_in_default_is_one_credit_per_part_at_seven_cents() -> None:
    pricing = build_pricing(Settings())
    assert pricing == Pricing(Decimal(1), Decimal("0.07"), "EUR", {})
    price = pricing.price("FR", 3)
    assert (price.credits, price.cost) == (Decimal(3), Decimal("0.21"))


def test_file_rates_by_country_with_a_default(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '{"currency": "EUR", "credit_price": 0.07, "default_credits_per_part": 1.2,'
        ' "countries": {"fr": 1, "PL": 1.5, " us ": 2.5}}',
    )
    pricing = load_pricing(path)
    assert pricing.by_country == {"FR": Decimal(1), "PL": Decimal("1.5"), "US": Decimal("2.5")}
    assert pricing.price("PL", 3).credits == Decimal("4.5")
    # Decimals read exactly from the file: 4.5 x 0.07 is 0.315, not 0.31499999...
    assert pricing.price("PL", 3).cost == Decimal("0.3150")
    assert pricing.price("DE", 1).credits == Decimal("1.2")
    assert pricing.price(None, 1).credits == Decimal("1.2")
    assert pricing.price("us", 2).credits == Decimal(5)


def test_omitted_fields_take_the_built_in_defaults(tmp_path: Path) -> None:
    pricing = load_pricing(write(tmp_path, {"countries": {"US": 2}}))
    assert (pricing.currency, pricing.credit_price, pricing.default_credits_per_part) == (
        "EUR",
        Decimal("0.07"),
        Decimal(1),
    )


def test_settings_pricing_file_is_used(tmp_path: Path) -> None:
    path = write(tmp_path, {"currency": "USD", "credit_price": 0.1})
    settings = Settings(pricing=PricingSettings(file=path))
    assert build_pricing(settings).currency == "USD"


def test_the_shipped_example_file_is_valid() -> None:
    pricing = load_pricing(EXAMPLE)
    assert pricing.by_country["FR"] == Decimal(1)
    assert pricing.credit_price == Decimal("0.07")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            {"countries": {"UK": 1}},
            "countries: 'UK' is not an ISO 3166-1 alpha-2 country with numbers",
        ),
        ({"countries": {"FR": -1}}, "countries.FR: Input should be greater than or equal to 0"),
        ({"credit_price": "cheap"}, "credit_price: Input should be a valid decimal"),
        ({"currency": "euro"}, "currency: String should match pattern"),
        ({"credits": 1}, "credits: Extra inputs are not permitted"),
        ([1, 2], "file: Input should be a valid dictionary"),
        ("{not json", "not valid JSON"),
    ],
)
def test_a_bad_file_is_a_clear_error(tmp_path: Path, content: Any, message: str) -> None:
    path = write(tmp_path, content)
    with pytest.raises(PricingFileError) as caught:
        load_pricing(path)
    assert str(caught.value).startswith(f"pricing file {path}: ")
    assert message in str(caught.value)


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    settings = Settings(pricing=PricingSettings(file=tmp_path / "nope.json"))
    with pytest.raises(PricingFileError, match=r"nope\.json: cannot be read"):
        build_pricing(settings)
