"""Every SMS the gateway writes in German, addressing the reader as "Sie".

"Sie" throughout: the verification texts already used it, and one tone per
language reads as one sender.
"""

from __future__ import annotations

from smsgateway.booking import ASKER, OFFEROR

REPLY_WORDS = ("JA", "NEIN")
# (singular, plural); "in 10 Minuten" takes the dative plural.
MINUTE_WORDS = ("Minute", "Minuten")

# Booking texts by (event type, role); the placeholders each may use are in templates/.
BOOKING: dict[tuple[str, str], str] = {
    ("booking.requested", OFFEROR): (
        "{other_name} möchte {booking_title} am {starts_at} buchen."
        " Antwort: {reply_yes} (annehmen) oder {reply_no} (ablehnen)."
    ),
    ("booking.expiring_soon", OFFEROR): (
        "{other_name} wartet auf Ihre Antwort: {booking_title} am {starts_at}."
        " Antworten Sie bis {expires_at}."
    ),
    ("booking.accepted", ASKER): (
        "Gute Nachricht: {other_name} hat Ihre Buchungsanfrage für {booking_title}"
        " am {starts_at} angenommen."
    ),
    ("booking.refused", ASKER): (
        "Leider wurde Ihre Buchungsanfrage für {booking_title} am {starts_at} abgelehnt."
    ),
    ("booking.expired", ASKER): (
        "Ihre Buchungsanfrage für {booking_title} am {starts_at} ist abgelaufen:"
        " {other_name} hat nicht geantwortet."
    ),
    ("booking.expired", OFFEROR): (
        "Die Buchungsanfrage von {other_name} für {booking_title} am {starts_at}"
        " ist ohne Antwort abgelaufen."
    ),
    ("booking.starting_soon", ASKER): (
        "Erinnerung: {booking_title} bei {other_name} beginnt am {starts_at}."
    ),
    ("booking.starting_soon", OFFEROR): (
        "Erinnerung: {other_name} hat {booking_title} gebucht, Beginn am {starts_at}."
    ),
    ("booking.cancelled", OFFEROR): (
        "{other_name} hat die Buchung für {booking_title} am {starts_at} storniert."
    ),
}

# Texts the gateway sends on its own, by name.
SYSTEM: dict[str, str] = {
    "verification_reply": (
        "{service}: Antworten Sie JA, um diese Nummer für SMS-Benachrichtigungen zu bestätigen."
    ),
    "verification_code": (
        "{service}: Ihr Bestätigungscode lautet {code}. Er läuft in {minutes} {minute_word} ab."
    ),
    "stop_confirmation": (
        "Sie erhalten keine SMS mehr von uns. Antworten Sie START, um sie wieder zu erhalten."
    ),
    "start_confirmation": (
        "Sie erhalten wieder SMS von uns. Antworten Sie STOP, um sie abzubestellen."
    ),
    "ambiguous": (
        "Mehrere Anfragen warten auf Ihre Antwort. Antworten Sie JA oder NEIN und den Code"
        " aus der Anfrage-SMS, z. B. JA {code}."
    ),
    # "Die Anfrage", not "Sie": a capital "Sie" would read as the reader.
    "no_open_request": (
        "Es gibt keine offene Buchungsanfrage: Die Anfrage wurde schon beantwortet,"
        " storniert oder ist abgelaufen."
    ),
}
