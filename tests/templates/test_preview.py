"""POST /v1/templates/preview, the worst case, the parts budget and smart encoding."""

from __future__ import annotations

import httpx

from smsgateway.config import Settings
from smsgateway.errors import PROBLEM_JSON
from smsgateway.runtime import Runtime
from smsgateway.templates.defaults import PLACEHOLDERS
from smsgateway.templates.preview import preview
from smsgateway.templates.schemas import MAX_PLACEHOLDER_VALUES, PLACEHOLDER_VALUE_MAX_LENGTH
from smsgateway.texts import DEFAULT_TEMPLATES
from tests.conftest import ADMIN_TOKEN

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
REQUESTED = ("booking.requested", "offeror")
RSQUO = "\u2019"  # the apostrophe phones and word processors type


def gsm7_parts(septets: int) -> int:
    """Independent GSM-7 part count for a text of plain basic-table characters."""
    return 1 if septets <= 160 else -(-septets // 153)


def filled_length(text: str, placeholders: dict[str, int]) -> int:
    """Length of ``text`` with each placeholder replaced by that many characters."""
    for name, size in placeholders.items():
        text = text.replace("{" + name + "}", "x" * size)
    return len(text)


async def test_preview_of_a_default_with_sample_values(
    http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    response = await http.post(
        "/v1/templates/preview", json={"type": REQUESTED[0], "role": REQUESTED[1]}, headers=auth
    )
    assert response.status_code == 200, response.text
    body = response.json()
    text = (
        "Booking request from Anna: Kayak for two on Tue, Dec 1, 9:00 AM."
        " Reply YES to accept or NO to refuse."
    )
    assert (body["text"], body["language"], body["encoding"]) == (text, "en", "gsm7")
    assert (body["characters"], body["segments"]) == (len(text), 1)

    worst = filled_length(DEFAULT_TEMPLATES[(*REQUESTED, "en")], PLACEHOLDERS[REQUESTED])
    assert body["worst_case"] == {"encoding": "gsm7", "characters": worst, "segments": 1}
    # Values that are not all GSM-7 make the message UCS-2: 70 / 67 units a part.
    assert body["worst_case_ucs2"]["encoding"] == "ucs2"
    assert body["worst_case_ucs2"]["segments"] == -(-worst // 67)
    assert (body["max_segments"], body["within_budget"]) == (2, True)


async def test_preview_in_french_with_given_values_and_dates_in_french(
    http: httpx.AsyncClient,
) -> None:
    response = await http.post(
        "/v1/templates/preview",
        json={
            "type": "booking.accepted",
            "role": "asker",
            "language": "fr-CA",
            "values": {"other_name": "Zoé"},
        },
        headers=ADMIN,
    )
    body = response.json()
    assert body["language"] == "fr"
    assert body["text"] == (
        "Bonne nouvelle : Zoé a accepté votre demande de réservation pour Kayak for two"
        " le mar. 1 déc. 09:00."
    )
    assert (body["encoding"], body["segments"]) == ("gsm7", 1)


async def test_preview_uses_stored_templates_and_the_fallback_chain(
    http: httpx.AsyncClient,
) -> None:
    await http.put(
        "/v1/templates/booking.accepted/asker/pt",
        json={"text": "{other_name} aceitou {booking_title}."},
        headers=ADMIN,
    )
    response = await http.post(
        "/v1/templates/preview",
        json={"type": "booking.accepted", "role": "asker", "language": "pt-BR"},
        headers=ADMIN,
    )
    assert (response.json()["language"], response.json()["text"]) == (
        "pt",
        "Anna aceitou Kayak for two.",
    )


# Eight titles: 8 x 14 = 112 characters with the sample title (one part), but
# 8 x 41 = 328 with titles at their 40-character maximum (three parts).
LONG = " ".join(["{booking_title}"] * 8)


async def test_preview_worst_case_of_an_unsaved_text(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/v1/templates/preview",
        json={"type": "booking.accepted", "role": "asker", "text": LONG},
        headers=ADMIN,
    )
    body = response.json()
    assert (body["characters"], body["segments"]) == (8 * 13 + 7, 1)
    assert body["worst_case"] == {"encoding": "gsm7", "characters": 8 * 40 + 7, "segments": 3}
    assert gsm7_parts(8 * 40 + 7) == 3
    assert body["within_budget"] is False


async def test_saving_over_budget_is_refused_unless_forced(
    http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    path = "/v1/templates/booking.accepted/asker/en"
    refused = await http.put(path, json={"text": LONG}, headers=ADMIN)
    assert refused.status_code == 422
    problem = refused.json()
    assert problem["type"].endswith("/template-over-budget")
    assert problem["worst_case"] == {"characters": 327, "segments": 3, "encoding": "gsm7"}
    assert problem["max_segments"] == 2
    assert "force=true" in problem["detail"]
    stored = (await http.get(path, headers=auth)).json()
    assert stored["is_default"] is True

    forced = await http.put(path, params={"force": "true"}, json={"text": LONG}, headers=ADMIN)
    assert forced.status_code == 200, forced.text
    assert (await http.get(path, headers=auth)).json()["text"] == LONG

    # Two parts is within the default budget: 6 x 41 - 1 = 245 septets.
    six = " ".join(["{booking_title}"] * 6)
    assert (await http.put(path, json={"text": six}, headers=ADMIN)).status_code == 200


async def test_a_french_text_forced_into_ucs2_by_a_letter_is_over_budget(
    http: httpx.AsyncClient,
) -> None:
    # "ê" is not GSM 03.38, so every part holds 67 UTF-16 units instead of 153 septets:
    # 188 characters in the worst case take three parts (they would fit two in GSM-7).
    text = (
        "Fenêtre : {other_name} a confirmé {booking_title} pour le {starts_at}."
        " Pensez à prendre vos affaires et à arriver un peu avant l'heure prévue."
    )
    response = await http.put(
        "/v1/templates/booking.accepted/asker/fr", json={"text": text}, headers=ADMIN
    )
    assert response.status_code == 422
    assert response.json()["worst_case"] == {"encoding": "ucs2", "characters": 188, "segments": 3}


async def test_preview_refuses_bad_placeholders_values_and_pairs(http: httpx.AsyncClient) -> None:
    async def problem(body: dict[str, object]) -> dict[str, object]:
        response = await http.post("/v1/templates/preview", json=body, headers=ADMIN)
        assert response.status_code == 422, response.text
        result: dict[str, object] = response.json()
        return result

    accepted = {"type": "booking.accepted", "role": "asker"}
    unknown = await problem({**accepted, "text": "Hi {price}"})
    assert (unknown["placeholder"], str(unknown["type"]).rsplit("/", 1)[1]) == (
        "price",
        "invalid-template",
    )
    value = await problem({**accepted, "values": {"prize": "1"}})
    assert value["placeholder"] == "prize"
    pair = await problem({"type": "booking.requested", "role": "asker"})
    assert str(pair["type"]).endswith("/unknown-template")
    language = await problem({**accepted, "language": "not a tag"})
    assert str(language["type"]).endswith("/invalid-language")
    assert (await http.post("/v1/templates/preview", json=accepted)).status_code == 401


async def test_a_value_at_the_length_limit_is_rendered(http: httpx.AsyncClient) -> None:
    name = "x" * PLACEHOLDER_VALUE_MAX_LENGTH
    response = await http.post(
        "/v1/templates/preview",
        json={"type": "booking.accepted", "role": "asker", "values": {"other_name": name}},
        headers=ADMIN,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["text"].startswith(f"Good news: {name} accepted")
    assert body["segments"] == -(-len(body["text"]) // 153)


async def test_a_value_over_the_length_limit_is_a_422_naming_it(http: httpx.AsyncClient) -> None:
    values = {"other_name": "Anna", "booking_title": "x" * (PLACEHOLDER_VALUE_MAX_LENGTH + 1)}
    response = await http.post(
        "/v1/templates/preview",
        json={"type": "booking.accepted", "role": "asker", "values": values},
        headers=ADMIN,
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM_JSON
    problem = response.json()
    assert problem["type"].endswith("/validation-error")
    assert [e["field"] for e in problem["errors"]] == ["body.values.booking_title"]
    assert "body.values.booking_title" in problem["detail"]
    assert "x" * 100 not in response.text  # the value is not echoed back


async def test_too_many_values_are_a_422(http: httpx.AsyncClient) -> None:
    values = {f"name{i}": "x" for i in range(MAX_PLACEHOLDER_VALUES + 1)}
    response = await http.post(
        "/v1/templates/preview",
        json={"type": "booking.accepted", "role": "asker", "values": values},
        headers=ADMIN,
    )
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["body.values"]


CURLY_FR = (
    f"Rappel : votre réservation «\u00a0{{booking_title}}\u00a0» commence le {{starts_at}}."
    f" N{RSQUO}oubliez pas : l{RSQUO}hôte {{other_name}} vous attend{RSQUO}\u2026"
    f" Arrivez 10\u00a0min avant \u2013 merci\u202f!"
)


async def test_smart_encoding_makes_a_curly_quoted_french_text_gsm7(
    http: httpx.AsyncClient, runtime: Runtime, settings: Settings
) -> None:
    text = CURLY_FR.replace("hôte", "hote")  # only punctuation keeps it out of GSM-7
    response = await http.post(
        "/v1/templates/preview",
        json={"type": "booking.starting_soon", "role": "asker", "language": "fr", "text": text},
        headers=ADMIN,
    )
    smart = response.json()
    assert smart["encoding"] == "gsm7"
    assert smart["text"].startswith('Rappel : votre réservation " Kayak for two " commence')
    assert (
        "N'oubliez pas : l'hote Anna vous attend'... Arrivez 10 min avant - merci !"
        in (smart["text"])
    )
    assert "é" in smart["text"]  # GSM letters stay as they are

    async with runtime.sessionmaker() as session:
        plain = await preview(
            session,
            settings.model_copy(
                update={
                    "templates": settings.templates.model_copy(update={"smart_encoding": False})
                }
            ),
            event_type="booking.starting_soon",
            role="asker",
            language="fr",
            text=text,
            values=None,
        )
    assert plain.rendered.encoding == "ucs2"
    assert smart["segments"] < plain.rendered.segments
    assert smart["worst_case"]["segments"] < plain.worst_case.segments


async def test_smart_encoding_leaves_a_letter_outside_gsm_alone(http: httpx.AsyncClient) -> None:
    # "ô" in hôte has no GSM look-alike that keeps the word: the text stays UCS-2, as written.
    response = await http.post(
        "/v1/templates/preview",
        json={
            "type": "booking.starting_soon",
            "role": "asker",
            "language": "fr",
            "text": CURLY_FR.replace("hôte", "fenêtre"),
        },
        headers=ADMIN,
    )
    body = response.json()
    assert body["encoding"] == "ucs2"
    assert "fenêtre" in body["text"]
    assert f"N{RSQUO}oubliez" in body["text"]


async def test_french_preview_has_french_dates_and_reply_words(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/v1/templates/preview",
        json={"type": REQUESTED[0], "role": REQUESTED[1], "language": "fr"},
        headers=ADMIN,
    )
    assert response.json()["text"] == (
        "Anna veut réserver Kayak for two le mar. 1 déc. 09:00."
        " Répondez OUI pour accepter, NON pour refuser."
    )
