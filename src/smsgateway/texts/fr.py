"""Every SMS the gateway writes in French, addressing the reader as "vous".

French avoids "de {other_name}" because the elision ("d'Anna") depends on the name,
and past participles agreeing with the title ("réservé(e)") whose gender is unknown.
"""

from __future__ import annotations

from smsgateway.booking import ASKER, OFFEROR

REPLY_WORDS = ("OUI", "NON")
MINUTE_WORDS = ("minute", "minutes")  # (singular, plural)

# Booking texts by (event type, role); the placeholders each may use are in templates/.
BOOKING: dict[tuple[str, str], str] = {
    ("booking.requested", OFFEROR): (
        "{other_name} veut réserver {booking_title} le {starts_at}."
        " Répondez {reply_yes} pour accepter, {reply_no} pour refuser."
    ),
    ("booking.expiring_soon", OFFEROR): (
        "{other_name} attend votre réponse pour {booking_title} le {starts_at},"
        " au plus tard le {expires_at}."
    ),
    ("booking.accepted", ASKER): (
        "Bonne nouvelle : {other_name} a accepté votre demande de réservation pour"
        " {booking_title} le {starts_at}."
    ),
    ("booking.refused", ASKER): (
        "Votre demande de réservation pour {booking_title} le {starts_at} a été refusée."
    ),
    ("booking.expired", ASKER): (
        "Votre demande de réservation pour {booking_title} le {starts_at} a expiré :"
        " {other_name} n'a pas répondu à temps."
    ),
    ("booking.expired", OFFEROR): (
        "La demande de réservation faite par {other_name} pour {booking_title}"
        " le {starts_at} a expiré sans réponse."
    ),
    ("booking.starting_soon", ASKER): (
        "Rappel : votre réservation pour {booking_title} avec {other_name} commence le {starts_at}."
    ),
    ("booking.starting_soon", OFFEROR): (
        "Rappel : {other_name} a réservé {booking_title}, début le {starts_at}."
    ),
    ("booking.cancelled", OFFEROR): (
        "{other_name} a annulé sa réservation pour {booking_title} le {starts_at}."
    ),
}

# Texts the gateway sends on its own, by name.
SYSTEM: dict[str, str] = {
    "verification_reply": (
        "{service} : répondez OUI pour confirmer ce numéro pour les notifications SMS."
    ),
    "verification_code": (
        "{service} : votre code de vérification est {code}. Il expire dans {minutes} {minute_word}."
    ),
    "stop_confirmation": (
        "Vous ne recevrez plus nos SMS. Répondez START pour les recevoir à nouveau."
    ),
    "start_confirmation": (
        "Vous recevrez à nouveau nos SMS. Répondez STOP pour ne plus les recevoir."
    ),
    "ambiguous": (
        "Plusieurs demandes attendent votre réponse. Répondez OUI ou NON suivi du code"
        " indiqué dans le SMS de la demande, par ex. OUI {code}."
    ),
    "no_open_request": (
        "Aucune demande de réservation en attente : elle a déjà été traitée, annulée ou a expiré."
    ),
}
