"""Every SMS the gateway writes in English."""

from __future__ import annotations

from smsgateway.booking import ASKER, OFFEROR

REPLY_WORDS = ("YES", "NO")
MINUTE_WORDS = ("minute", "minutes")  # (singular, plural)

# Booking texts by (event type, role); the placeholders each may use are in templates/.
BOOKING: dict[tuple[str, str], str] = {
    # The offeror answers by replying to this SMS.
    ("booking.requested", OFFEROR): (
        "Booking request from {other_name}: {booking_title} on {starts_at}."
        " Reply {reply_yes} to accept or {reply_no} to refuse."
    ),
    ("booking.expiring_soon", OFFEROR): (
        "{other_name} is waiting for your answer: {booking_title} on {starts_at}."
        " Request expires {expires_at}."
    ),
    ("booking.accepted", ASKER): (
        "Good news: {other_name} accepted your booking request for {booking_title} on {starts_at}."
    ),
    ("booking.refused", ASKER): (
        "Sorry, your booking request for {booking_title} on {starts_at} was declined."
    ),
    ("booking.expired", ASKER): (
        "Your booking request for {booking_title} on {starts_at} has expired:"
        " {other_name} did not answer in time."
    ),
    ("booking.expired", OFFEROR): (
        "The booking request from {other_name} for {booking_title} on {starts_at}"
        " has expired without an answer."
    ),
    ("booking.starting_soon", ASKER): (
        "Reminder: your booking for {booking_title} with {other_name} starts {starts_at}."
    ),
    ("booking.starting_soon", OFFEROR): (
        "Reminder: {booking_title} booked by {other_name} starts {starts_at}."
    ),
    ("booking.cancelled", OFFEROR): (
        "{other_name} cancelled the booking for {booking_title} on {starts_at}."
    ),
}

# Texts the gateway sends on its own, by name.
SYSTEM: dict[str, str] = {
    "verification_reply": "{service}: reply YES to confirm this number for SMS notifications.",
    "verification_code": (
        "{service}: your verification code is {code}. It expires in {minutes} {minute_word}."
    ),
    "stop_confirmation": (
        "You will no longer receive SMS from us. Reply START to receive them again."
    ),
    "start_confirmation": "You will receive our SMS again. Reply STOP to stop them.",
    "ambiguous": (
        "Several requests are waiting for your answer. Reply YES or NO followed by the"
        " code given in the request SMS, e.g. YES {code}."
    ),
    "no_open_request": (
        "There is no open booking request to answer: it was already answered,"
        " cancelled or has expired."
    ),
}
