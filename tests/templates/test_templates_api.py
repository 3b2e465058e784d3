"""Template management over HTTP: list, read, write, reset, history, and what events send."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from smsgateway.messages.dispatcher import Dispatcher
from smsgateway.models.templates import StoredTemplate, TemplateChange
from smsgateway.providers.fake import FakeProvider
from smsgateway.runtime import Runtime
from smsgateway.templates.defaults import PLACEHOLDERS
from smsgateway.templates.languages import canonical_language
from smsgateway.templates.service import find_template
from smsgateway.texts import DEFAULT_TEMPLATES
from tests.conftest import ADMIN_TOKEN, booking_event

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
ACCEPTED = "/v1/templates/booking.accepted/asker"
ACCEPTED_FR_DEFAULT = DEFAULT_TEMPLATES[("booking.accepted", "asker", "fr")]
SHORT_FR = "Super : {other_name} a dit oui pour {booking_title} le {starts_at}."


def as_admin(actor: str | None = None) -> dict[str, str]:
    return {**ADMIN, "X-Actor": actor} if actor else ADMIN


async def put(http: httpx.AsyncClient, path: str, text: str, **headers: str) -> httpx.Response:
    return await http.put(path, json={"text": text}, headers={**ADMIN, **headers})


async def count(runtime: Runtime, model: Any) -> int:
    async with runtime.sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def sent_text(
    http: httpx.AsyncClient,
    auth: dict[str, str],
    dispatcher: Dispatcher,
    provider: FakeProvider,
    event: dict[str, Any],
) -> str:
    response = await http.post("/v1/booking-events", json=event, headers=auth)
    assert response.status_code == 202, response.text
    await dispatcher.run_once()
    return provider.sent[-1].text


async def test_list_shows_every_default_with_its_placeholders(
    http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    for headers in (ADMIN, auth):  # the admin token or a client's API key
        response = await http.get("/v1/templates", headers=headers)
        assert response.status_code == 200, response.text
        items = response.json()["items"]
        assert len(items) == len(DEFAULT_TEMPLATES)
        assert all(item["is_default"] and item["has_default"] for item in items)
    first = items[0]
    assert (first["type"], first["role"]) == next(iter(PLACEHOLDERS))
    assert first["placeholders"] == PLACEHOLDERS[(first["type"], first["role"])]
    assert {item["language"] for item in items} == {"de", "en", "fr"}


async def test_reads_need_a_key_and_writes_need_the_admin_token(
    http: httpx.AsyncClient, auth: dict[str, str], runtime: Runtime
) -> None:
    assert (await http.get("/v1/templates")).status_code == 401
    bad = {"Authorization": "Bearer nope"}
    assert (await http.get(f"{ACCEPTED}/fr", headers=bad)).status_code == 401
    for headers in ({}, auth):
        response = await http.put(f"{ACCEPTED}/fr", json={"text": SHORT_FR}, headers=headers)
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"
        assert (await http.delete(f"{ACCEPTED}/fr", headers=headers)).status_code == 401
    assert await count(runtime, StoredTemplate) == 0


async def test_put_overrides_the_default_and_get_and_list_show_it(
    http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    response = await put(http, f"{ACCEPTED}/fr", SHORT_FR, **{"X-Actor": "alice@ops"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["text"], body["language"], body["updated_by"]) == (SHORT_FR, "fr", "alice@ops")
    assert (body["is_default"], body["has_default"]) == (False, True)
    assert body["updated_at"] is not None

    got = (await http.get(f"{ACCEPTED}/fr", headers=auth)).json()
    assert got == body
    listed = (
        await http.get(
            "/v1/templates", params={"type": "booking.accepted", "role": "asker"}, headers=auth
        )
    ).json()["items"]
    assert [(i["language"], i["is_default"]) for i in listed] == [
        ("de", True),
        ("en", True),
        ("fr", False),
    ]
    only_fr = (await http.get("/v1/templates", params={"language": "FR"}, headers=auth)).json()
    assert len(only_fr["items"]) == len(PLACEHOLDERS)


@pytest.mark.parametrize(
    ("text", "placeholder"),
    [
        ("Hello {other_name}, it costs {price}.", "price"),
        ("{booking_title} on {starts_at}, expires {expires_at}", "expires_at"),  # not offered
        ("Hello {booking_title.upper}", "booking_title.upper"),
        ("Hello {other_name!r}", "other_name"),
        ("Hello {0}", "0"),
        ("Hello {booking_title", None),  # malformed: unbalanced brace
        ("Hello } there", None),
    ],
)
async def test_bad_placeholders_are_refused_naming_them(
    http: httpx.AsyncClient, runtime: Runtime, text: str, placeholder: str | None
) -> None:
    response = await put(http, f"{ACCEPTED}/fr", text)
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["type"].endswith("/invalid-template")
    assert problem["placeholder"] == placeholder
    assert problem["errors"][0]["field"] == "text"
    if placeholder is not None:
        assert placeholder in problem["detail"]
    assert await count(runtime, StoredTemplate) == 0
    assert await count(runtime, TemplateChange) == 0


@pytest.mark.parametrize(
    "path",
    [
        "/v1/templates/booking.nope/asker/fr",
        "/v1/templates/booking.requested/asker/fr",  # the asker gets no text for a request
        "/v1/templates/booking.accepted/admin/fr",
    ],
)
async def test_unknown_type_or_role_is_404(http: httpx.AsyncClient, path: str) -> None:
    for response in (
        await http.put(path, json={"text": "Hi"}, headers=ADMIN),
        await http.get(path, headers=ADMIN),
        await http.delete(path, headers=ADMIN),
        await http.get(f"{path}/history", headers=ADMIN),
    ):
        assert response.status_code == 404, response.text
        assert response.json()["type"].endswith("/unknown-template")


@pytest.mark.parametrize("language", ["french!", "f", "pt-BRAZIL-", "1234", "x" * 40])
async def test_invalid_language_tag_is_422(http: httpx.AsyncClient, language: str) -> None:
    response = await put(http, f"{ACCEPTED}/{language}", SHORT_FR)
    assert response.status_code == 422
    assert response.json()["type"].endswith("/invalid-language")


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("PT_br", "pt-BR"),
        ("zh-hant-tw", "zh-Hant-TW"),
        ("es-419", "es-419"),
        ("sr-Latn-RS", "sr-Latn-RS"),
        ("de-CH-1996", "de-CH-1996"),
        ("en-US-u-ca-gregory", "en-US-u-ca-gregory"),
        ("EN-x-TWAIN", "en-x-twain"),
    ],
)
def test_language_tags_are_stored_in_canonical_spelling(given: str, canonical: str) -> None:
    assert canonical_language(given) == canonical


async def test_any_language_can_be_added_and_is_stored_canonically(
    http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    text = "Boa notícia: {other_name} aceitou o seu pedido para {booking_title}, {starts_at}."
    response = await put(http, f"{ACCEPTED}/PT_br", text)
    assert response.status_code == 200, response.text
    assert response.json()["language"] == "pt-BR"
    assert response.json()["has_default"] is False
    assert (await http.get(f"{ACCEPTED}/pt-br", headers=auth)).json()["text"] == text
    # The exact-language GET does not fall back.
    missing = await http.get(f"{ACCEPTED}/pt", headers=auth)
    assert missing.status_code == 404
    assert missing.json()["type"].endswith("/template-not-found")


async def test_history_keeps_who_when_old_and_new_text(
    http: httpx.AsyncClient, auth: dict[str, str], runtime: Runtime
) -> None:
    second = SHORT_FR.replace("Super", "Chouette")
    assert (await put(http, f"{ACCEPTED}/fr", SHORT_FR, **{"X-Actor": "alice"})).is_success
    assert (await put(http, f"{ACCEPTED}/fr", second, **{"X-Actor": "bob"})).is_success
    assert (await put(http, f"{ACCEPTED}/fr", second)).is_success  # same text: no change
    deleted = await http.delete(f"{ACCEPTED}/fr", headers=as_admin("carol"))
    assert deleted.status_code == 204
    other = "/v1/templates/booking.refused/asker/en"
    assert (await put(http, other, "Sorry: {booking_title} was declined.")).is_success

    history = (await http.get(f"{ACCEPTED}/FR/history", headers=ADMIN)).json()
    assert [
        (c["action"], c["old_text"], c["new_text"], c["changed_by"]) for c in history["items"]
    ] == [
        ("delete", second, None, "carol"),
        ("put", SHORT_FR, second, "bob"),
        ("put", None, SHORT_FR, "alice"),
    ]
    # A client's key sees the changes, not who among the operators made them.
    for path in (f"{ACCEPTED}/FR/history", "/v1/template-changes"):
        seen = (await http.get(path, headers=auth)).json()["items"]
        assert seen and {c["changed_by"] for c in seen} == {"ops"}
    assert all(c["language"] == "fr" and c["changed_at"] for c in history["items"])
    assert history["next_before"] is None

    everything = (await http.get("/v1/template-changes", headers=ADMIN)).json()["items"]
    assert [(c["type"], c["changed_by"]) for c in everything] == [
        ("booking.refused", "admin"),
        ("booking.accepted", "carol"),
        ("booking.accepted", "bob"),
        ("booking.accepted", "alice"),
    ]
    page = (await http.get("/v1/template-changes", params={"limit": 2}, headers=ADMIN)).json()
    assert [c["id"] for c in page["items"]] == [c["id"] for c in everything[:2]]
    rest = await http.get(
        "/v1/template-changes", params={"before": page["next_before"]}, headers=ADMIN
    )
    assert [c["id"] for c in rest.json()["items"]] == [c["id"] for c in everything[2:]]
    assert await count(runtime, TemplateChange) == 4


async def test_actor_header_is_bounded(http: httpx.AsyncClient) -> None:
    response = await put(http, f"{ACCEPTED}/fr", SHORT_FR, **{"X-Actor": "a" * 101})
    assert response.status_code == 422


async def test_delete_restores_the_default_and_404s_when_nothing_is_stored(
    http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    nothing = await http.delete(f"{ACCEPTED}/fr", headers=ADMIN)
    assert nothing.status_code == 404
    assert nothing.json()["type"].endswith("/template-not-found")
    await put(http, f"{ACCEPTED}/fr", SHORT_FR)
    assert (await http.delete(f"{ACCEPTED}/fr", headers=ADMIN)).status_code == 204
    restored = (await http.get(f"{ACCEPTED}/fr", headers=auth)).json()
    assert (restored["text"], restored["is_default"]) == (ACCEPTED_FR_DEFAULT, True)


async def test_stored_text_is_what_a_booking_event_sends_until_deleted(
    http: httpx.AsyncClient, auth: dict[str, str], dispatcher: Dispatcher, provider: FakeProvider
) -> None:
    await put(http, f"{ACCEPTED}/fr", SHORT_FR)
    event = booking_event("booking.accepted")  # the asker, Anna, reads French
    text = await sent_text(http, auth, dispatcher, provider, event)
    assert text == "Super : Marc a dit oui pour Kayak for two le mar. 1 déc. 09:00."

    await http.delete(f"{ACCEPTED}/fr", headers=ADMIN)
    text = await sent_text(http, auth, dispatcher, provider, {**event, "event_id": "evt-982"})
    assert text == (
        "Bonne nouvelle : Marc a accepté votre demande de réservation pour Kayak for two"
        " le mar. 1 déc. 09:00."
    )


async def test_fallback_chain_regional_then_primary_then_default(
    http: httpx.AsyncClient,
    auth: dict[str, str],
    dispatcher: Dispatcher,
    provider: FakeProvider,
    runtime: Runtime,
) -> None:
    pt = "Boa notícia: {other_name} aceitou {booking_title}."
    assert (await put(http, f"{ACCEPTED}/pt", pt)).is_success
    event = booking_event("booking.accepted")
    event["asker"]["language"] = "pt-BR"
    # pt-BR has no text: its primary language pt is used.
    assert await sent_text(http, auth, dispatcher, provider, event) == (
        "Boa notícia: Marc aceitou Kayak for two."
    )
    messages = (await http.get("/v1/messages", headers=auth)).json()["items"]
    assert messages[0]["language"] == "pt"

    # A pt-BR text, once stored, is preferred to pt.
    assert (await put(http, f"{ACCEPTED}/pt-BR", "Oba! {other_name} topou.")).is_success
    event["event_id"] = "evt-982"
    assert await sent_text(http, auth, dispatcher, provider, event) == "Oba! Marc topou."

    # A language with no text at all falls back to the default language.
    async with runtime.sessionmaker() as session:
        template = await find_template(session, "booking.accepted", "asker", "it-IT", "fr")
        assert (template.language, template.text) == ("fr", ACCEPTED_FR_DEFAULT)
        template = await find_template(session, "booking.accepted", "asker", "it", "pt")
        assert (template.language, template.text, template.is_default) == ("pt", pt, False)
        template = await find_template(session, "booking.accepted", "asker", None, "en-GB")
        assert (template.language, template.is_default) == ("en", True)


async def test_concurrent_writes_keep_one_row_and_a_history_per_write(
    http: httpx.AsyncClient, runtime: Runtime, is_postgres: bool
) -> None:
    texts = [f"{{other_name}} a dit oui ({n})." for n in range(4)]
    responses = await asyncio.gather(*(put(http, f"{ACCEPTED}/it", text) for text in texts))
    # A losing insert of the same new language is a 409 to retry, never a 500.
    assert {r.status_code for r in responses} <= {200, 409}
    assert 200 in {r.status_code for r in responses}
    assert await count(runtime, StoredTemplate) == 1

    updates = await asyncio.gather(*(put(http, f"{ACCEPTED}/it", text) for text in reversed(texts)))
    assert all(r.status_code == 200 for r in updates)
    history = (await http.get(f"{ACCEPTED}/it/history", headers=ADMIN)).json()["items"]
    stored = (await http.get(f"{ACCEPTED}/it", headers=ADMIN)).json()["text"]
    assert history[0]["new_text"] == stored
    if is_postgres:
        # Rows are locked while changed: each change's old text is the previous new text.
        chain = list(reversed(history))
        for before, after in itertools.pairwise(chain):
            assert after["old_text"] == before["new_text"]
