"""JSON ``null`` in a list or object variable reads as the variable's default."""

from __future__ import annotations

from typing import Any

import pytest

from smsgateway.config import Settings


@pytest.mark.parametrize(
    ("variable", "group", "field", "default"),
    [
        ("SMSGW_TRUSTED_PROXIES", "api", "trusted_proxies", []),
        ("SMSGW_MARKETING_DAYS", "marketing", "days", [1, 2, 3, 4, 5, 6]),
        (
            "SMSGW_MAX_BODY_BYTES_BY_PATH",
            "api",
            "max_body_bytes_by_path",
            {"/v1/campaigns": 20 * 1024 * 1024},
        ),
    ],
)
def test_json_null_reads_as_the_default(
    monkeypatch: pytest.MonkeyPatch, variable: str, group: str, field: str, default: Any
) -> None:
    monkeypatch.setenv(variable, "null")
    assert getattr(getattr(Settings(), group), field) == default
