"""Texts the gateway sends on its own in answer to a reply (GSM-7, one part each)."""

from __future__ import annotations

from smsgateway.templates.render import resolve_language

TEXTS: dict[str, dict[str, str]] = {
    "stop_confirmation": {
        "en": "You will no longer receive SMS from us. Reply START to receive them again.",
        "fr": "Vous ne recevrez plus nos SMS. Répondez START pour les recevoir à nouveau.",
        "de": "Du erhältst keine SMS mehr von uns. Antworte START, um sie wieder zu erhalten.",
    },
    "start_confirmation": {
        "en": "You will receive our SMS again. Reply STOP to stop them.",
        "fr": "Vous recevrez à nouveau nos SMS. Répondez STOP pour ne plus les recevoir.",
        "de": "Du erhältst wieder SMS von uns. Antworte STOP, um sie abzubestellen.",
    },
    "ambiguous": {
        "en": "Several requests are waiting for your answer. Reply YES or NO followed by the "
        "code given in the request SMS, e.g. YES {code}.",
        "fr": "Plusieurs demandes attendent votre réponse. Répondez OUI ou NON suivi du code "
        "indiqué dans le SMS de la demande, par ex. OUI {code}.",
        "de": "Mehrere Anfragen warten auf deine Antwort. Antworte JA oder NEIN und den Code "
        "aus der Anfrage-SMS, z. B. JA {code}.",
    },
    "no_open_request": {
        "en": "There is no open booking request to answer: it was already answered, "
        "cancelled or has expired.",
        "fr": "Aucune demande de réservation en attente : elle a déjà été traitée, annulée "
        "ou a expiré.",
        "de": "Es gibt keine offene Buchungsanfrage: Sie wurde schon beantwortet, storniert "
        "oder ist abgelaufen.",
    },
}


def system_text(name: str, language: str | None, default_language: str, **values: str) -> str:
    """The text ``name`` in the best language available (see ``resolve_language``)."""
    variants = TEXTS[name]
    chosen = resolve_language(language, list(variants), default_language)
    return variants[chosen].format(**values)
