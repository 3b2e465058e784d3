"""What each booking (event type, role) text may say: its placeholders and their lengths.

The wording itself is in ``smsgateway.texts``. The declared maximum lengths let a
template's worst-case part count be computed before any event: the shipped texts
fit one GSM 03.38 part (160 characters) with every placeholder at its maximum.
"""

from __future__ import annotations

from smsgateway.booking import ASKER, OFFEROR

# Declared maximum rendered length of each placeholder. The event layer truncates values
# to these, so a template's worst-case part count can be computed before any event.
_COMMON: dict[str, int] = {
    "booking_title": 40,
    "other_name": 20,  # the other party's first name
    "recipient_name": 20,
    "starts_at": 24,  # format_when(): localized short date and time
}
_EXPIRES: dict[str, int] = {"expires_at": 24}
# The exact words to reply: "YES", or "YES K7" when the offeror has several pending
# requests and the reply must say which one it answers.
_REPLIES: dict[str, int] = {"reply_yes": 8, "reply_no": 8}

PLACEHOLDERS: dict[tuple[str, str], dict[str, int]] = {
    ("booking.requested", OFFEROR): {**_COMMON, **_EXPIRES, **_REPLIES},
    ("booking.expiring_soon", OFFEROR): {**_COMMON, **_EXPIRES},
    ("booking.accepted", ASKER): {**_COMMON},
    ("booking.refused", ASKER): {**_COMMON},
    ("booking.expired", ASKER): {**_COMMON, **_EXPIRES},
    ("booking.expired", OFFEROR): {**_COMMON, **_EXPIRES},
    ("booking.starting_soon", ASKER): {**_COMMON},
    ("booking.starting_soon", OFFEROR): {**_COMMON},
    ("booking.cancelled", OFFEROR): {**_COMMON},
}

# Values for template previews (the example event of DESIGN.md, dates as format_when
# renders them in English).
SAMPLE_VALUES: dict[str, str] = {
    "booking_title": "Kayak for two",
    "other_name": "Anna",
    "recipient_name": "Marc",
    "starts_at": "Tue, Dec 1, 9:00 AM",
    "expires_at": "Sun, Nov 22, 9:00 AM",
    "reply_yes": "YES",
    "reply_no": "NO",
}


def offered_placeholders(event_type: str, role: str) -> dict[str, int]:
    """Placeholder names a (type, role) template may use, with their maximum length.

    Raises ``KeyError`` when that role gets no text for that event type.
    """
    try:
        return dict(PLACEHOLDERS[(event_type, role)])
    except KeyError:
        raise KeyError(f"no {role!r} text for {event_type!r}") from None
