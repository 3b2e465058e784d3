"""/v1/messages: direct sends, reading, listing, cancelling, scheduling."""

from __future__ import annotations

import asyncio
import base64
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from smsgateway.messages.dispatcher import Dispatcher
from smsgateway.models.messages import Message
from smsgateway.providers.fake import FakeProvider
from smsgateway.runtime import Runtime
from tests.conftest import booking_event
from tests.factories import make_client
from tests.helpers import make_due, send_message

PHONE = "+33612345678"
DESIGN_FIELDS = {
    "id",
    "status",
    "reason",
    "to",
    "text",
    "role",
    "booking_id",
    "tag",
    "encoding",
    "segments",
    "credits",
    "send_at",
    "provider_id",
    "created_at",
    "submitted_at",
    "delivered_at",
}
TIME_FIELDS = ("send_at", "created_at", "submitted_at", "delivered_at")
ISO_WITH_OFFSET = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


async def _send(
    http: httpx.AsyncClient, auth: dict[str, str], text: str = "Hello", **fields: Any
) -> dict[str, Any]:
    return await send_message(http, auth, to=PHONE, text=text, **fields)


async def _get(http: httpx.AsyncClient, auth: dict[str, str], message_id: str) -> dict[str, Any]:
    response = await http.get(f"/v1/messages/{message_id}", headers=auth)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _list(
    http: httpx.AsyncClient, auth: dict[str, str], **params: str | int
) -> dict[str, Any]:
    response = await http.get("/v1/messages", params=params, headers=auth)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = response.json()
    assert problem["status"] == status
    assert problem["type"].startswith("https://")
    return problem


# -- POST /v1/messages ---------------------------------------------------------


async def test_a_valid_number_is_queued_with_its_cost(
    http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    message = await _send(http, auth, "a" * 161, tag="promo-1")
    assert (message["status"], message["reason"]) == ("queued", None)
    assert (message["to"], message["text"], message["tag"]) == (PHONE, "a" * 161, "promo-1")
    assert (message["encoding"], message["segments"], message["credits"]) == ("gsm7", 2, 2)
    assert message["role"] is None
    assert message["booking_id"] is None
    assert message["provider_id"] is None


@pytest.mark.parametrize(
    ("text", "encoding", "segments"),
    [
        ("a" * 160, "gsm7", 1),
        ("a" * 306, "gsm7", 2),
        ("a" * 307, "gsm7", 3),
        ("See you at 9 \N{SMILING FACE WITH SMILING EYES}", "ucs2", 1),
        ("\N{SMILING FACE WITH SMILING EYES}" * 35, "ucs2", 1),
        ("\N{SMILING FACE WITH SMILING EYES}" * 36, "ucs2", 2),
    ],
)
async def test_encoding_and_parts_are_counted(
    http: httpx.AsyncClient, auth: dict[str, str], text: str, encoding: str, segments: int
) -> None:
    message = await _send(http, auth, text)
    assert (message["encoding"], message["segments"], message["credits"]) == (
        encoding,
        segments,
        segments,
    )
    assert message["text"] == text


async def test_an_invalid_number_gives_a_rejected_message_that_is_never_sent(
    http: httpx.AsyncClient,
    auth: dict[str, str],
    dispatcher: Dispatcher,
    provider: FakeProvider,
) -> None:
    response = await http.post("/v1/messages", json={"to": "+33 1", "text": "Hello"}, headers=auth)
    assert response.status_code == 202, response.text
    message = response.json()
    assert (message["status"], message["reason"]) == ("rejected", "invalid_phone")
    assert message["credits"] == 0
    assert (await _get(http, auth, message["id"]))["status"] == "rejected"
    assert await dispatcher.run_once() == 0
    assert provider.sent == []


async def test_a_queued_message_is_sent_by_the_dispatcher(
    http: httpx.AsyncClient,
    auth: dict[str, str],
    dispatcher: Dispatcher,
    provider: FakeProvider,
) -> None:
    message = await _send(http, auth, "Your code is 1234")
    await dispatcher.run_once()
    assert [(job.receivers, job.text) for job in provider.sent] == [([PHONE], "Your code is 1234")]
    stored = await _get(http, auth, message["id"])
    assert (stored["status"], stored["provider_id"]) == ("submitted", "fake-1")
    assert stored["submitted_at"] is not None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"text": "Hello"}, "to"),
        ({"to": PHONE}, "text"),
        ({"to": PHONE, "text": ""}, "text"),
        ({"to": PHONE, "text": "Hello", "send_at": "2030-01-01T09:00:00"}, "send_at"),
        ({"to": PHONE, "text": "Hello", "surprise": 1}, "surprise"),
    ],
)
async def test_bad_messages_get_a_problem_naming_the_field(
    http: httpx.AsyncClient, auth: dict[str, str], body: dict[str, Any], field: str
) -> None:
    response = await http.post("/v1/messages", json=body, headers=auth)
    problem = _assert_problem(response, 422)
    assert any(e["field"].endswith(field) for e in problem["errors"])
    assert PHONE not in response.text


async def test_requires_an_api_key(http: httpx.AsyncClient) -> None:
    response = await http.post("/v1/messages", json={"to": PHONE, "text": "Hello"})
    _assert_problem(response, 401)
    _assert_problem(await http.get("/v1/messages"), 401)


# -- GET /v1/messages/{id} -----------------------------------------------------


async def test_a_message_shows_every_design_field(
    http: httpx.AsyncClient, auth: dict[str, str], dispatcher: Dispatcher
) -> None:
    posted = await http.post("/v1/booking-events", json=booking_event(), headers=auth)
    message_id = posted.json()["messages"][0]["id"]
    await dispatcher.run_once()

    message = await _get(http, auth, message_id)

    assert set(message) >= DESIGN_FIELDS
    assert message["id"] == message_id
    assert (message["status"], message["reason"]) == ("submitted", None)
    assert (message["to"], message["role"], message["booking_id"]) == (
        "+33611223344",
        "offeror",
        "b-42",
    )
    assert message["text"].startswith("Booking request from Anna")
    assert message["tag"] is None
    assert message["encoding"] == "gsm7"
    assert message["segments"] >= 1
    assert message["credits"] == message["segments"]
    assert message["provider_id"] == "fake-1"
    assert message["send_at"] is None
    assert message["delivered_at"] is None
    for name in ("created_at", "submitted_at"):
        assert ISO_WITH_OFFSET.match(message[name]), (name, message[name])
        assert datetime.fromisoformat(message[name]).utcoffset() is not None
    created = datetime.fromisoformat(message["created_at"])
    submitted = datetime.fromisoformat(message["submitted_at"])
    assert created <= submitted <= datetime.now(UTC)


async def test_times_carry_an_offset_everywhere(
    http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    paris = timezone(timedelta(hours=1))
    send_at = (datetime.now(paris) + timedelta(days=30)).replace(microsecond=0).isoformat()
    posted = await _send(http, auth, send_at=send_at)
    stored = await _get(http, auth, posted["id"])
    listed = (await _list(http, auth))["items"][0]
    for shown in (posted, stored, listed):
        for name in TIME_FIELDS:
            if shown[name] is not None:
                assert ISO_WITH_OFFSET.match(shown[name]), (name, shown[name])
        assert datetime.fromisoformat(shown["send_at"]) == datetime.fromisoformat(send_at)


async def test_an_unknown_message_is_not_found(
    http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    response = await http.get("/v1/messages/00000000-0000-0000-0000-000000000000", headers=auth)
    _assert_problem(response, 404)


async def test_another_client_cannot_see_or_cancel_a_message(
    http: httpx.AsyncClient, auth: dict[str, str], runtime: Runtime
) -> None:
    message = await _send(http, auth)
    other = (await make_client(runtime, "other marketplace")).auth

    hidden = await http.get(f"/v1/messages/{message['id']}", headers=other)
    problem = _assert_problem(hidden, 404)
    assert PHONE not in hidden.text
    assert problem["type"].endswith("/message-not-found")
    _assert_problem(await http.delete(f"/v1/messages/{message['id']}", headers=other), 404)
    assert (await _list(http, other))["items"] == []
    assert (await _get(http, auth, message["id"]))["status"] == "queued"


# -- GET /v1/messages ----------------------------------------------------------


async def test_pages_follow_cursors_newest_first(
    http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    created = [(await _send(http, auth, f"Message {n}"))["id"] for n in range(5)]

    seen: list[str] = []
    page = await _list(http, auth, limit=2)
    sizes = [len(page["items"])]
    seen += [m["id"] for m in page["items"]]
    while page["next_cursor"] is not None:
        page = await _list(http, auth, limit=2, cursor=page["next_cursor"])
        sizes.append(len(page["items"]))
        seen += [m["id"] for m in page["items"]]

    assert sizes == [2, 2, 1]
    assert seen == list(reversed(created))


async def test_pages_are_exact_when_messages_share_a_creation_time(
    http: httpx.AsyncClient, auth: dict[str, str], runtime: Runtime
) -> None:
    created = {(await _send(http, auth, f"Message {n}"))["id"] for n in range(5)}
    async with runtime.sessionmaker() as session, session.begin():
        await session.execute(
            update(Message).values(created_at=datetime(2026, 1, 1, 9, 0, 0, 123456, tzinfo=UTC))
        )

    seen: list[str] = []
    cursor: str | None = None
    for _ in range(5):
        params: dict[str, str | int] = {"limit": 2}
        if cursor is not None:
            params["cursor"] = cursor
        page = await _list(http, auth, **params)
        seen += [m["id"] for m in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert sorted(seen) == sorted(created)
    assert seen == sorted(created, reverse=True)


async def test_a_full_last_page_has_no_cursor(
    http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    for n in range(2):
        await _send(http, auth, f"Message {n}")
    page = await _list(http, auth, limit=2)
    assert len(page["items"]) == 2
    assert page["next_cursor"] is None


async def test_list_filters_by_status_tag_and_booking(
    http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    tagged = await _send(http, auth, tag="reminders")
    untagged = await _send(http, auth)
    rejected = (
        await http.post("/v1/messages", json={"to": "+33 1", "text": "Hi"}, headers=auth)
    ).json()
    booked = await http.post("/v1/booking-events", json=booking_event(), headers=auth)
    other_booking = booking_event(event_id="evt-982")
    other_booking["booking"]["id"] = "b-43"
    await http.post("/v1/booking-events", json=other_booking, headers=auth)

    def ids(page: dict[str, Any]) -> set[str]:
        return {m["id"] for m in page["items"]}

    assert ids(await _list(http, auth, tag="reminders")) == {tagged["id"]}
    assert ids(await _list(http, auth, status="rejected")) == {rejected["id"]}
    assert untagged["id"] in ids(await _list(http, auth, status="queued"))
    assert len((await _list(http, auth, status="queued"))["items"]) == 4
    assert ids(await _list(http, auth, booking_id="b-42")) == {booked.json()["messages"][0]["id"]}
    assert ids(await _list(http, auth, booking_id="b-42", status="rejected")) == set()
    assert (await _list(http, auth, tag="nothing"))["items"] == []


async def test_an_unknown_status_filter_is_a_problem(
    http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    response = await http.get("/v1/messages", params={"status": "lost"}, headers=auth)
    problem = _assert_problem(response, 422)
    assert any("status" in e["field"] for e in problem["errors"])


@pytest.mark.parametrize(
    "cursor",
    [
        "not a cursor",
        "!!!",
        base64.urlsafe_b64encode(b"no separator").decode(),
        base64.urlsafe_b64encode(b"yesterday|abc").decode(),
        base64.urlsafe_b64encode(b"\xff\xfe|abc").decode(),
        # A well-formed time without an offset is not one of ours either.
        base64.urlsafe_b64encode(b"2026-01-01T09:00:00|abc").decode(),
    ],
)
async def test_a_bad_cursor_is_a_problem(
    http: httpx.AsyncClient, auth: dict[str, str], cursor: str
) -> None:
    await _send(http, auth)
    response = await http.get("/v1/messages", params={"cursor": cursor}, headers=auth)
    problem = _assert_problem(response, 400)
    assert problem["type"].endswith("/invalid-cursor")


@pytest.mark.parametrize("limit", [0, 501, "many"])
async def test_an_out_of_range_limit_is_a_problem(
    http: httpx.AsyncClient, auth: dict[str, str], limit: int | str
) -> None:
    response = await http.get("/v1/messages", params={"limit": limit}, headers=auth)
    _assert_problem(response, 422)


# -- DELETE /v1/messages/{id} --------------------------------------------------


async def test_cancelling_a_queued_message_stops_it(
    http: httpx.AsyncClient,
    auth: dict[str, str],
    dispatcher: Dispatcher,
    provider: FakeProvider,
) -> None:
    message = await _send(http, auth)
    response = await http.delete(f"/v1/messages/{message['id']}", headers=auth)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "cancelled"

    assert await dispatcher.run_once() == 0
    assert provider.sent == []
    stored = await _get(http, auth, message["id"])
    assert (stored["status"], stored["provider_id"]) == ("cancelled", None)


async def test_a_submitted_message_cannot_be_cancelled(
    http: httpx.AsyncClient, auth: dict[str, str], dispatcher: Dispatcher
) -> None:
    message = await _send(http, auth)
    await dispatcher.run_once()
    response = await http.delete(f"/v1/messages/{message['id']}", headers=auth)
    problem = _assert_problem(response, 409)
    assert "submitted" in problem["detail"]
    assert (await _get(http, auth, message["id"]))["status"] == "submitted"


async def test_cancelling_twice_is_a_conflict(
    http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    message = await _send(http, auth)
    await http.delete(f"/v1/messages/{message['id']}", headers=auth)
    response = await http.delete(f"/v1/messages/{message['id']}", headers=auth)
    _assert_problem(response, 409)
    assert (await _get(http, auth, message["id"]))["status"] == "cancelled"


async def test_a_rejected_message_cannot_be_cancelled(
    http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    rejected = await http.post("/v1/messages", json={"to": "+33 1", "text": "Hi"}, headers=auth)
    response = await http.delete(f"/v1/messages/{rejected.json()['id']}", headers=auth)
    _assert_problem(response, 409)


async def test_cancelling_an_unknown_message_is_not_found(
    http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    response = await http.delete("/v1/messages/no-such-message", headers=auth)
    _assert_problem(response, 404)


# -- send_at -------------------------------------------------------------------


async def test_a_scheduled_message_waits_until_it_is_due(
    http: httpx.AsyncClient,
    auth: dict[str, str],
    dispatcher: Dispatcher,
    provider: FakeProvider,
    runtime: Runtime,
) -> None:
    send_at = datetime.now(UTC) + timedelta(hours=2)
    message = await _send(http, auth, "Later", send_at=send_at.isoformat())
    assert message["status"] == "queued"

    assert await dispatcher.run_once() == 0
    assert provider.sent == []
    assert (await _get(http, auth, message["id"]))["status"] == "queued"

    # Two hours pass.
    await make_due(runtime, message["id"])
    assert await dispatcher.run_once() == 1
    assert [job.text for job in provider.sent] == ["Later"]
    assert (await _get(http, auth, message["id"]))["status"] == "submitted"


async def test_a_message_due_shortly_is_sent_once_due(
    http: httpx.AsyncClient,
    auth: dict[str, str],
    dispatcher: Dispatcher,
    provider: FakeProvider,
) -> None:
    send_at = datetime.now(UTC) + timedelta(seconds=0.4)
    message = await _send(http, auth, "Soon", send_at=send_at.isoformat())
    assert await dispatcher.run_once() == 0
    await asyncio.sleep(max(0.0, (send_at - datetime.now(UTC)).total_seconds()) + 0.05)
    assert await dispatcher.run_once() == 1
    assert [job.text for job in provider.sent] == ["Soon"]
    assert (await _get(http, auth, message["id"]))["status"] == "submitted"


async def test_a_scheduled_message_can_be_cancelled_before_it_is_due(
    http: httpx.AsyncClient,
    auth: dict[str, str],
    dispatcher: Dispatcher,
    provider: FakeProvider,
    runtime: Runtime,
) -> None:
    send_at = datetime.now(UTC) + timedelta(hours=2)
    message = await _send(http, auth, "Later", send_at=send_at.isoformat())
    response = await http.delete(f"/v1/messages/{message['id']}", headers=auth)
    assert response.json()["status"] == "cancelled"
    await make_due(runtime, message["id"])
    assert await dispatcher.run_once() == 0
    assert provider.sent == []
