"""The booking texts smsgateway ships, and what each (event type, role) may say.

Every SMS part is billed, so the defaults are written to fit one GSM 03.38 part
(160 characters) even when every placeholder is at its declared maximum length, and
they avoid characters outside GSM 03.38 (one "ê" or curly quote would switch the
whole text to UCS-2, 70 characters a part). Languages: en, fr and de. Spanish is not
shipped: correct Spanish needs á, í, ó, ú, which are not GSM 03.38.
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

# Wording notes. French avoids "de {other_name}" because the elision ("d'Anna") depends
# on the name, and past participles agreeing with the title ("réservé(e)") whose gender
# is unknown. German uses "du", the usual tone of consumer marketplaces.
DEFAULT_TEMPLATES: dict[tuple[str, str, str], str] = {
    # booking.requested -> offeror: the offeror answers by replying to this SMS.
    ("booking.requested", OFFEROR, "en"): (
        "Booking request from {other_name}: {booking_title} on {starts_at}."
        " Reply {reply_yes} to accept or {reply_no} to refuse."
    ),
    ("booking.requested", OFFEROR, "fr"): (
        "{other_name} veut réserver {booking_title} le {starts_at}."
        " Répondez {reply_yes} pour accepter, {reply_no} pour refuser."
    ),
    ("booking.requested", OFFEROR, "de"): (
        "{other_name} möchte {booking_title} am {starts_at} buchen."
        " Antworte {reply_yes} (annehmen) oder {reply_no} (ablehnen)."
    ),
    # booking.expiring_soon -> offeror
    ("booking.expiring_soon", OFFEROR, "en"): (
        "{other_name} is waiting for your answer: {booking_title} on {starts_at}."
        " Request expires {expires_at}."
    ),
    ("booking.expiring_soon", OFFEROR, "fr"): (
        "{other_name} attend votre réponse pour {booking_title} le {starts_at},"
        " au plus tard le {expires_at}."
    ),
    ("booking.expiring_soon", OFFEROR, "de"): (
        "{other_name} wartet auf deine Antwort: {booking_title} am {starts_at}."
        " Antworte bis {expires_at}."
    ),
    # booking.accepted -> asker
    ("booking.accepted", ASKER, "en"): (
        "Good news: {other_name} accepted your booking request for {booking_title} on {starts_at}."
    ),
    ("booking.accepted", ASKER, "fr"): (
        "Bonne nouvelle : {other_name} a accepté votre demande de réservation pour"
        " {booking_title} le {starts_at}."
    ),
    ("booking.accepted", ASKER, "de"): (
        "Gute Nachricht: {other_name} hat deine Buchungsanfrage für {booking_title}"
        " am {starts_at} angenommen."
    ),
    # booking.refused -> asker
    ("booking.refused", ASKER, "en"): (
        "Sorry, your booking request for {booking_title} on {starts_at} was declined."
    ),
    ("booking.refused", ASKER, "fr"): (
        "Votre demande de réservation pour {booking_title} le {starts_at} a été refusée."
    ),
    ("booking.refused", ASKER, "de"): (
        "Leider wurde deine Buchungsanfrage für {booking_title} am {starts_at} abgelehnt."
    ),
    # booking.expired -> asker
    ("booking.expired", ASKER, "en"): (
        "Your booking request for {booking_title} on {starts_at} has expired:"
        " {other_name} did not answer in time."
    ),
    ("booking.expired", ASKER, "fr"): (
        "Votre demande de réservation pour {booking_title} le {starts_at} a expiré :"
        " {other_name} n'a pas répondu à temps."
    ),
    ("booking.expired", ASKER, "de"): (
        "Deine Buchungsanfrage für {booking_title} am {starts_at} ist abgelaufen:"
        " {other_name} hat nicht geantwortet."
    ),
    # booking.expired -> offeror
    ("booking.expired", OFFEROR, "en"): (
        "The booking request from {other_name} for {booking_title} on {starts_at}"
        " has expired without an answer."
    ),
    ("booking.expired", OFFEROR, "fr"): (
        "La demande de réservation faite par {other_name} pour {booking_title}"
        " le {starts_at} a expiré sans réponse."
    ),
    ("booking.expired", OFFEROR, "de"): (
        "Die Buchungsanfrage von {other_name} für {booking_title} am {starts_at}"
        " ist ohne Antwort abgelaufen."
    ),
    # booking.starting_soon -> asker
    ("booking.starting_soon", ASKER, "en"): (
        "Reminder: your booking for {booking_title} with {other_name} starts {starts_at}."
    ),
    ("booking.starting_soon", ASKER, "fr"): (
        "Rappel : votre réservation pour {booking_title} avec {other_name} commence le {starts_at}."
    ),
    ("booking.starting_soon", ASKER, "de"): (
        "Erinnerung: {booking_title} bei {other_name} beginnt am {starts_at}."
    ),
    # booking.starting_soon -> offeror
    ("booking.starting_soon", OFFEROR, "en"): (
        "Reminder: {booking_title} booked by {other_name} starts {starts_at}."
    ),
    ("booking.starting_soon", OFFEROR, "fr"): (
        "Rappel : {other_name} a réservé {booking_title}, début le {starts_at}."
    ),
    ("booking.starting_soon", OFFEROR, "de"): (
        "Erinnerung: {other_name} hat {booking_title} gebucht, Beginn am {starts_at}."
    ),
    # booking.cancelled -> offeror
    ("booking.cancelled", OFFEROR, "en"): (
        "{other_name} cancelled the booking for {booking_title} on {starts_at}."
    ),
    ("booking.cancelled", OFFEROR, "fr"): (
        "{other_name} a annulé sa réservation pour {booking_title} le {starts_at}."
    ),
    ("booking.cancelled", OFFEROR, "de"): (
        "{other_name} hat die Buchung für {booking_title} am {starts_at} storniert."
    ),
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
