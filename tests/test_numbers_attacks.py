"""Attack: number types that cost the sender, let through by sendable."""

from __future__ import annotations

import pytest

from smsgateway.numbers import InvalidNumber, sendable


@pytest.mark.parametrize("number", ["+447012345678", "+447000123456"])
def test_uk_personal_numbers_are_refused(number: str) -> None:
    # UK 070 "personal numbers" forward anywhere and are billed at premium rates:
    # Ofcom's textbook toll-fraud range. phonenumbers types them PERSONAL_NUMBER,
    # which is in neither PREMIUM_TYPES nor NOT_MOBILE_TYPES.
    with pytest.raises(InvalidNumber) as refused:
        sendable(number, None, frozenset())
    assert refused.value.reason in ("premium_rate", "not_mobile")
