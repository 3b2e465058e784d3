"""POST /v1/booking-events: who gets what, idempotency, validation."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from sqlalchemy import func, select

from smsgateway.app import create_app
from smsgateway.messages.dispatcher import Dispatcher
from smsgateway.models.events import BookingEvent
from smsgateway.models.messages import Message
from smsgateway.providers.fake import FakeProvider
from smsgateway.runtime import Runtime
from tests.conftest import booking_event
from tests.factories import make_client
from tests.helpers import asgi_post

EXPECTED_ROLES = {
    "booking.requested": ["offeror"],
    "booking.expiring_soon": ["offeror"],
    "booking.accepted": ["asker"],
    "booking.refused": ["asker"],
    "booking.expired": ["asker", "offeror"],
    "booking.starting_soon": ["asker", "offeror"],
    "booking.cancelled": ["offeror"],
}


@pytest.mark.parametrize("event_type", list(EXPECTED_ROLES))
async def test_each_type_creates_messages_for_the_right_roles(
    http: httpx.AsyncClient, auth: dict[str, str], event_type: str
) -> None:
    response = await http.post("/v1/booking-events", json=booking_event(event_type), headers=auth)
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["event_id"] == "evt-981"
    assert [m["role"] for m in body["messages"]] == EXPECTED_ROLES[event_type]
    for message in body["messages"]:
        assert message["status"] == "queued"
        assert message["reason"] is None
        assert message["encoding"] in {"gsm7", "ucs2"}
        assert message["segments"] >= 1
        assert message["credits"] == message["segments"]
        expected_to = "+33601020304" if message["role"] == "asker" else "+33611223344"
        assert message["to"] == expected_to


async def test_texts_are_in_the_recipients_language(
    http: httpx.AsyncClient, auth: dict[str, str], dispatcher: Dispatcher, provider: FakeProvider
) -> None:
    response = await http.post(
        "/v1/booking-events", json=booking_event("booking.expired"), headers=auth
    )
    assert response.status_code == 202
    await dispatcher.run_once()
    texts = {job.receivers[0]: job.text for job in provider.sent}
    # Anna (asker) reads French, Marc (offeror) English; each names the other.
    assert texts["+33601020304"] == (
        "Votre demande de réservation pour Kayak for two le mar. 1 déc. 09:00 a expiré : "
        "Marc n'a pas répondu à temps."
    )
    assert texts["+33611223344"] == (
        "The booking request from Anna for Kayak for two on Tue, Dec 1, 9:00 AM has expired "
        "without an answer."
    )


async def test_unknown_language_falls_back_to_default(
    http: httpx.AsyncClient, auth: dict[str, str], dispatcher: Dispatcher, provider: FakeProvider
) -> None:
    event = booking_event("booking.accepted")
    event["asker"]["language"] = "pt-BR"
    await http.post("/v1/booking-events", json=event, headers=auth)
    await dispatcher.run_once()
    assert provider.sent[0].text.startswith("Good news: Marc accepted")


async def test_regional_language_uses_its_primary_language(
    http: httpx.AsyncClient, auth: dict[str, str], dispatcher: Dispatcher, provider: FakeProvider
) -> None:
    event = booking_event("booking.accepted")
    event["asker"]["language"] = "fr-CA"
    await http.post("/v1/booking-events", json=event, headers=auth)
    await dispatcher.run_once()
    assert provider.sent[0].text.startswith("Bonne nouvelle : Marc a accepté")


async def test_requested_tells_how_to_answer_in_french(
    http: httpx.AsyncClient, auth: dict[str, str], dispatcher: Dispatcher, provider: FakeProvider
) -> None:
    event = booking_event("booking.requested")
    event["offeror"]["language"] = "fr"
    await http.post("/v1/booking-events", json=event, headers=auth)
    await dispatcher.run_once()
    assert provider.sent[0].text == (
        "Anna veut réserver Kayak for two le mar. 1 déc. 09:00. "
        "Répondez OUI pour accepter, NON pour refuser."
    )


async def test_invalid_number_gives_a_rejected_message(
    http: httpx.AsyncClient, auth: dict[str, str], dispatcher: Dispatcher, provider: FakeProvider
) -> None:
    event = booking_event("booking.starting_soon")
    event["asker"]["phone"] = "+33 1"
    response = await http.post("/v1/booking-events", json=event, headers=auth)
    assert response.status_code == 202
    by_role = {m["role"]: m for m in response.json()["messages"]}
    assert by_role["asker"]["status"] == "rejected"
    assert by_role["asker"]["reason"] == "invalid_phone"
    assert by_role["asker"]["credits"] == 0
    assert by_role["offeror"]["status"] == "queued"
    await dispatcher.run_once()
    assert [job.receivers for job in provider.sent] == [["+33611223344"]]


async def test_national_numbers_are_normalised_to_e164(
    http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    event = booking_event("booking.accepted")
    event["asker"]["phone"] = "+33 6 01 02 03 04"
    response = await http.post("/v1/booking-events", json=event, headers=auth)
    assert response.json()["messages"][0]["to"] == "+33601020304"


async def test_missing_phone_without_registration_is_rejected(
    http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    event = booking_event("booking.accepted")
    del event["asker"]["phone"]
    response = await http.post("/v1/booking-events", json=event, headers=auth)
    assert response.status_code == 202
    message = response.json()["messages"][0]
    assert (message["status"], message["reason"]) == ("rejected", "no_phone")


async def test_same_event_twice_answers_the_same_and_sends_once(
    http: httpx.AsyncClient,
    auth: dict[str, str],
    dispatcher: Dispatcher,
    provider: FakeProvider,
    runtime: Runtime,
) -> None:
    first = await http.post("/v1/booking-events", json=booking_event(), headers=auth)
    # Same meaning, other key order: still the same event.
    reordered = dict(reversed(list(booking_event().items())))
    second = await http.post("/v1/booking-events", json=reordered, headers=auth)
    assert first.status_code == 202
    assert second.status_code == 200
    assert second.json() == first.json()
    await dispatcher.run_once()
    await dispatcher.run_once()
    assert len(provider.sent) == 1
    async with runtime.sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(Message)) == 1


async def test_same_event_id_with_another_body_is_a_conflict(
    http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    await http.post("/v1/booking-events", json=booking_event(), headers=auth)
    changed = booking_event()
    changed["booking"]["title"] = "Canoe"
    response = await http.post("/v1/booking-events", json=changed, headers=auth)
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"].endswith("/event-id-conflict")


async def test_concurrent_duplicates_create_one_set_of_messages(
    http: httpx.AsyncClient, auth: dict[str, str], runtime: Runtime
) -> None:
    responses = await asyncio.gather(
        *(http.post("/v1/booking-events", json=booking_event(), headers=auth) for _ in range(8))
    )
    assert sorted(r.status_code for r in responses) == [200] * 7 + [202]
    assert len({r.json()["messages"][0]["id"] for r in responses}) == 1
    async with runtime.sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(Message)) == 1
        assert await session.scalar(select(func.count()).select_from(BookingEvent)) == 1


async def test_accepted_event_is_committed_before_the_answer(
    auth: dict[str, str], runtime: Runtime
) -> None:
    """Another connection sees the rows when the answer's first byte goes out.

    Driven at the ASGI level: an HTTP client only returns once the app is done,
    after the request's session has committed anyway, so it cannot tell.
    """
    seen: list[tuple[int, int]] = []

    async def on_start(status: int) -> None:
        async with runtime.sessionmaker() as session:
            count = await session.scalar(select(func.count()).select_from(Message))
        seen.append((status, count or 0))

    app = create_app(runtime=runtime)
    async with app.router.lifespan_context(app):
        await asgi_post(app, "/v1/booking-events", booking_event(), auth, on_start)
    assert seen == [(202, 1)]


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda e: e.pop("event_id"), "event_id"),
        (lambda e: e.update(type="booking.unknown"), "type"),
        (lambda e: e.pop("offeror"), "offeror"),
        (lambda e: e["booking"].update(starts_at="2026-12-01T09:00:00"), "starts_at"),
        (lambda e: e["offeror"].update(language="not a language"), "language"),
        (lambda e: e.update(surprise=1), "surprise"),
    ],
)
async def test_bad_events_get_a_problem_naming_the_field(
    http: httpx.AsyncClient, auth: dict[str, str], mutate: object, field: str
) -> None:
    event = booking_event()
    mutate(event)  # type: ignore[operator]
    response = await http.post("/v1/booking-events", json=event, headers=auth)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 422
    assert field in problem["detail"] or any(
        field in e["field"] or field in e["message"] for e in problem["errors"]
    )
    assert "+336" not in response.text


async def test_requires_an_api_key(http: httpx.AsyncClient) -> None:
    response = await http.post("/v1/booking-events", json=booking_event())
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    wrong = await http.post(
        "/v1/booking-events", json=booking_event(), headers={"Authorization": "Bearer sgw_nope"}
    )
    assert wrong.status_code == 401


async def test_unverified_numbers_are_blocked_when_verification_is_required(
    http: httpx.AsyncClient, auth: dict[str, str], runtime: Runtime
) -> None:
    runtime.settings.verification.required = True
    response = await http.post("/v1/booking-events", json=booking_event(), headers=auth)
    message = response.json()["messages"][0]
    assert (message["status"], message["reason"]) == ("blocked", "unverified")
    assert message["credits"] == 0


async def test_events_of_two_clients_do_not_collide(
    http: httpx.AsyncClient, auth: dict[str, str], runtime: Runtime
) -> None:
    other = await make_client(runtime, "other")
    one = await http.post("/v1/booking-events", json=booking_event(), headers=auth)
    two = await http.post(
        "/v1/booking-events",
        json=booking_event(),
        headers=other.auth,
    )
    assert one.status_code == two.status_code == 202
    assert one.json()["messages"][0]["id"] != two.json()["messages"][0]["id"]


async def test_long_titles_are_clipped_to_the_templates_budget(
    http: httpx.AsyncClient, auth: dict[str, str], dispatcher: Dispatcher, provider: FakeProvider
) -> None:
    event = booking_event("booking.accepted")
    event["booking"]["title"] = "Sunset kayak tour along the cliffs with a picnic basket"
    await http.post("/v1/booking-events", json=event, headers=auth)
    await dispatcher.run_once()
    assert "Sunset kayak tour along the cliffs wi..." in provider.sent[0].text
    assert "picnic" not in provider.sent[0].text
