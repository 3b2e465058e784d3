"""Phone numbers: parse and normalise to E.164, and mask for logs."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, PhoneNumberType


class InvalidNumber(ValueError):
    """A number that cannot be texted. ``reason`` is a stable code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class PhoneNumber:
    e164: str
    country: str | None  # ISO 3166-1 alpha-2
    is_mobile: bool | None  # None when the numbering plan cannot tell
    kind: str = "unknown"  # phonenumbers' type, lower case: mobile, fixed_line, premium_rate…


NON_GEOGRAPHIC = "001"  # phonenumbers' region for country codes of no country
_MOBILE_TYPES = {PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE}


def normalise(raw: str, default_region: str | None = None) -> PhoneNumber:
    """Parse ``raw`` (E.164, or national when ``default_region`` is set).

    Raises ``InvalidNumber`` with reason ``invalid_phone`` for anything that is
    not a valid, dialable number.
    """
    text = raw.strip()
    if not text or len(text) > 32:
        raise InvalidNumber("invalid_phone", "phone number is empty or too long")
    try:
        parsed = phonenumbers.parse(text, default_region)
    except NumberParseException as exc:
        reason = f"phone number cannot be parsed ({exc.error_type})"
        raise InvalidNumber("invalid_phone", reason) from None
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidNumber("invalid_phone", "phone number is not a valid number")
    region = phonenumbers.region_code_for_number(parsed)
    if region == NON_GEOGRAPHIC:
        # Satellite phones and international networks (+870, +881, +882, +883…): costly
        # to reach, a known toll-fraud route, and in no country's price list.
        raise InvalidNumber("invalid_phone", "non-geographic numbers are not served")
    kind = phonenumbers.number_type(parsed)
    is_mobile: bool | None
    if kind in _MOBILE_TYPES:
        is_mobile = True
    elif kind == PhoneNumberType.UNKNOWN:
        is_mobile = None
    else:
        is_mobile = False
    return PhoneNumber(
        e164=phonenumbers.format_number(parsed, PhoneNumberFormat.E164),
        country=region,
        is_mobile=is_mobile,
        kind=_KIND_NAMES.get(kind, "unknown"),
    )


# Types that cost the sender a premium (toll fraud), and types that cannot get an SMS.
# Personal numbers (UK 070) forward anywhere at premium rates: a classic toll-fraud range.
PREMIUM_TYPES = frozenset({"premium_rate", "shared_cost", "uan", "personal_number"})
NOT_MOBILE_TYPES = frozenset({"fixed_line", "toll_free", "voicemail", "pager"})
NUMBER_TYPES = PREMIUM_TYPES | NOT_MOBILE_TYPES
_KIND_NAMES = {
    getattr(PhoneNumberType, name): name.lower()
    for name in dir(PhoneNumberType)
    if name.isupper() and isinstance(getattr(PhoneNumberType, name), int)
}


def sendable(
    raw: str,
    default_region: str | None,
    allowed: frozenset[str],
    countries: frozenset[str] = frozenset(),
) -> PhoneNumber:
    """``normalise``, then refuse what no SMS should go to unless its type is ``allowed``.

    ``InvalidNumber`` with reason ``premium_rate`` (premium rate, shared cost,
    UAN, personal number) or ``not_mobile`` (fixed line, toll free, voicemail, pager);
    ``country_not_allowed`` when ``countries`` is given and lacks the number's.
    """
    number = normalise(raw, default_region)
    if countries and number.country not in countries:
        raise InvalidNumber("country_not_allowed", "this client may not text this country")
    if number.kind in allowed:
        return number
    if number.kind in PREMIUM_TYPES:
        raise InvalidNumber("premium_rate", f"a {number.kind} number costs a premium to text")
    if number.kind in NOT_MOBILE_TYPES:
        raise InvalidNumber("not_mobile", f"a {number.kind} number cannot receive SMS")
    return number


def country_of(e164: str) -> str | None:
    try:
        return phonenumbers.region_code_for_number(phonenumbers.parse(e164, None))
    except NumberParseException:
        return None


def mask(number: str | None) -> str:
    """``+33601020304`` -> ``+336******04``: enough to tell numbers apart in logs."""
    if not number:
        return "-"
    if len(number) <= 6:
        return "*" * len(number)
    return number[:4] + "*" * (len(number) - 6) + number[-2:]


def receiver_key(number: str) -> str:
    """A number however a provider writes it (``+33…``, ``0033…``), hashed to match on.

    Delivery reports keep this key, not the number, to find their message.
    """
    digits = "".join(ch for ch in number if ch.isdigit())
    if digits.startswith("00"):
        digits = digits[2:]
    return hashlib.sha256(digits.encode()).hexdigest()[:32]
