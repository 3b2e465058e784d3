"""Reminders scheduled from booking events: created, deduplicated, cancelled, sent on time.

Bookings are set a few days ahead at a fixed time of day in Paris, so each
test gives the same reminder times whatever the hour it runs at.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import func, select, update

from smsgateway.config import Settings
from smsgateway.events.reminders import reminder_due
from smsgateway.messages.dispatcher import Dispatcher
from smsgateway.models.clients import ApiClient, CreditEntry
from smsgateway.models.messages import Message
from smsgateway.providers.fake import FakeProvider
from smsgateway.runtime import Runtime
from tests.conftest import booking_event
from tests.factories import make_client, make_number_state

PARIS = ZoneInfo("Europe/Paris")
ASKER, OFFEROR = "+33601020304", "+33611223344"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"reminders": settings.reminders.model_copy(update={"enabled": True})}
    )


def _paris(days: int, hour: int, minute: int = 0) -> datetime:
    day = datetime.now(PARIS).date() + timedelta(days=days)
    return datetime.combine(day, time(hour, minute), tzinfo=PARIS)


def _event(event_type: str, starts_at: datetime, **overrides: Any) -> dict[str, Any]:
    body = booking_event(event_type, event_id=f"evt-{event_type}-{starts_at.isoformat()}")
    body["booking"]["starts_at"] = starts_at.isoformat()
    body["booking"]["expires_at"] = (starts_at - timedelta(days=1)).isoformat()
    body.update(overrides)
    return body


async def _post(
    http: httpx.AsyncClient, auth: dict[str, str], body: dict[str, Any], status: int = 202
) -> dict[str, Any]:
    response = await http.post("/v1/booking-events", json=body, headers=auth)
    assert response.status_code == status, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def _reminders(http: httpx.AsyncClient, auth: dict[str, str]) -> list[dict[str, Any]]:
    response = await http.get("/v1/messages", params={"booking_id": "b-42"}, headers=auth)
    return [m for m in response.json()["items"] if m["kind"] == "reminder"]


async def _reminders_fall_due(runtime: Runtime) -> None:
    """Time passes: the reminders' moment comes."""
    async with runtime.sessionmaker() as session, session.begin():
        await session.execute(
            update(Message)
            .where(Message.kind == "reminder")
            .values(due_at=datetime.now(UTC) - timedelta(seconds=1))
        )


async def _balance(runtime: Runtime, client_id: str) -> Decimal | None:
    async with runtime.sessionmaker() as session:
        client = await session.get(ApiClient, client_id)
        assert client is not None
        return client.balance


# -- when a reminder goes ---------------------------------------------------------


def test_reminder_due_keeps_out_of_quiet_hours_and_before_the_booking() -> None:
    settings = Settings()
    now = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    at = datetime(2026, 11, 23, 14, 0, tzinfo=PARIS)
    deadline = at + timedelta(hours=24)
    assert reminder_due(at, deadline, ASKER, settings, now) == at
    # 06:00 in Paris waits for 08:00 when the booking is later that day...
    early = datetime(2026, 11, 23, 6, 0, tzinfo=PARIS)
    assert reminder_due(early, early + timedelta(hours=3), ASKER, settings, now) == datetime(
        2026, 11, 23, 8, 0, tzinfo=PARIS
    )
    # ... and goes the evening before when the booking starts by 08:00.
    assert reminder_due(early, early + timedelta(hours=2), ASKER, settings, now) == datetime(
        2026, 11, 22, 21, 59, tzinfo=PARIS
    )
    # Nothing when its moment has passed, or when the evening before has.
    assert reminder_due(at, deadline, ASKER, settings, at) is None
    late_now = datetime(2026, 11, 22, 22, 30, tzinfo=PARIS)
    assert reminder_due(early, early + timedelta(hours=1), ASKER, settings, late_now) is None


# -- booking.accepted schedules booking.starting_soon -----------------------------


async def test_accepted_schedules_a_reminder_for_each_party_a_day_before(
    http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    starts_at = _paris(3, 15)
    answer = await _post(http, auth, _event("booking.accepted", starts_at))

    assert [m["role"] for m in answer["messages"]] == ["asker"]
    reminders = {r["role"]: r for r in answer["reminders"]}
    assert set(reminders) == {"asker", "offeror"}
    for role, to in (("asker", ASKER), ("offeror", OFFEROR)):
        reminder = reminders[role]
        assert (reminder["type"], reminder["to"], reminder["status"]) == (
            "booking.starting_soon",
            to,
            "queued",
        )
        assert reminder["created"] is True
        assert datetime.fromisoformat(reminder["send_at"]) == starts_at - timedelta(days=1)
        assert datetime.fromisoformat(reminder["due_at"]) == starts_at - timedelta(days=1)

    listed = {m["role"]: m for m in await _reminders(http, auth)}
    assert set(listed) == {"asker", "offeror"}
    assert listed["asker"]["event_type"] == "booking.starting_soon"
    # The same templates as a booking.starting_soon event, in each party's language.
    assert listed["asker"]["text"].startswith("Rappel : votre réservation pour Kayak for two")
    assert listed["offeror"]["text"].startswith("Reminder: Kayak for two booked by Anna starts")


async def test_the_lead_is_configurable(
    http: httpx.AsyncClient, auth: dict[str, str], runtime: Runtime
) -> None:
    runtime.settings = runtime.settings.model_copy(
        update={"reminders": runtime.settings.reminders.model_copy(update={"lead_hours": 3})}
    )
    starts_at = _paris(3, 15)
    answer = await _post(http, auth, _event("booking.accepted", starts_at))
    for reminder in answer["reminders"]:
        assert datetime.fromisoformat(reminder["send_at"]) == starts_at - timedelta(hours=3)


async def test_no_reminder_once_its_moment_has_passed(
    http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    soon = datetime.now(UTC) + timedelta(hours=5)
    answer = await _post(http, auth, _event("booking.accepted", soon))
    assert answer["reminders"] == []
    assert await _reminders(http, auth) == []


async def test_a_reminder_in_quiet_hours_waits_for_the_morning(
    http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    starts_at = _paris(3, 7, 0)  # the reminder's own time, 07:00, is in quiet hours
    answer = await _post(http, auth, _event("booking.accepted", starts_at))
    for reminder in answer["reminders"]:
        assert datetime.fromisoformat(reminder["send_at"]) == _paris(2, 7, 0)
        assert datetime.fromisoformat(reminder["due_at"]) == _paris(2, 8, 0)


async def test_the_reminder_is_sent_at_its_time_and_not_before(
    http: httpx.AsyncClient,
    auth: dict[str, str],
    dispatcher: Dispatcher,
    provider: FakeProvider,
    runtime: Runtime,
) -> None:
    await _post(http, auth, _event("booking.accepted", _paris(3, 15)))
    await dispatcher.run_once()
    assert [job.text[:18] for job in provider.sent] == ["Bonne nouvelle : M"]

    await _reminders_fall_due(runtime)
    await dispatcher.run_once()
    reminders = [job for job in provider.sent if job.text.startswith(("Rappel", "Reminder"))]
    assert sorted(job.receivers[0] for job in reminders) == [ASKER, OFFEROR]
    assert all(job.no_stop_clause for job in reminders)  # booking texts, not marketing
    assert {m["status"] for m in await _reminders(http, auth)} == {"submitted"}


async def test_reminders_need_credits_like_the_event(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    shop = await make_client(runtime, quota=2)
    problem = await _post(http, shop.auth, _event("booking.accepted", _paris(3, 15)), status=402)
    assert problem["credits_needed"] == 3  # the acceptance and two reminders
    async with runtime.sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(Message)) == 0
    assert await _balance(runtime, shop.id) == Decimal(2)


async def test_an_opted_out_party_gets_no_reminder(
    http: httpx.AsyncClient, auth: dict[str, str], runtime: Runtime
) -> None:
    await make_number_state(runtime, OFFEROR, opted_out=True)
    answer = await _post(http, auth, _event("booking.accepted", _paris(3, 15)))
    assert [r["role"] for r in answer["reminders"]] == ["asker"]


# -- duplicates -------------------------------------------------------------------


async def test_a_repeated_accepted_event_does_not_schedule_twice(
    http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    starts_at = _paris(3, 15)
    first = await _post(http, auth, _event("booking.accepted", starts_at))
    replay = await _post(http, auth, _event("booking.accepted", starts_at), status=200)
    assert replay == first
    again = await _post(http, auth, _event("booking.accepted", starts_at, event_id="evt-again"))
    assert {(r["id"], r["created"]) for r in again["reminders"]} == {
        (r["id"], False) for r in first["reminders"]
    }
    assert len(await _reminders(http, auth)) == 2


async def test_concurrent_accepted_events_schedule_one_set_of_reminders(
    http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    starts_at = _paris(3, 15)
    responses = await asyncio.gather(
        *(
            http.post(
                "/v1/booking-events",
                json=_event("booking.accepted", starts_at, event_id=f"evt-{n}"),
                headers=auth,
            )
            for n in range(6)
        )
    )
    assert {r.status_code for r in responses} == {202}
    assert len(await _reminders(http, auth)) == 2
    created = [r for resp in responses for r in resp.json()["reminders"] if r["created"]]
    assert len(created) == 2


async def test_a_moved_booking_moves_its_reminders(
    http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    first = await _post(http, auth, _event("booking.accepted", _paris(3, 15)))
    moved = await _post(http, auth, _event("booking.accepted", _paris(4, 10)))
    reminders = {r["id"]: r for r in await _reminders(http, auth)}
    for old in first["reminders"]:
        assert (reminders[old["id"]]["status"], reminders[old["id"]]["reason"]) == (
            "cancelled",
            "booking_changed",
        )
    for new in moved["reminders"]:
        assert new["created"] and reminders[new["id"]]["status"] == "queued"
        assert datetime.fromisoformat(new["send_at"]) == _paris(3, 10)


async def test_starting_soon_posted_after_a_reminder_sends_nothing_more(
    http: httpx.AsyncClient, auth: dict[str, str], dispatcher: Dispatcher, runtime: Runtime
) -> None:
    starts_at = _paris(3, 15)
    accepted = await _post(http, auth, _event("booking.accepted", starts_at))
    soon = await _post(http, auth, _event("booking.starting_soon", starts_at))
    assert soon["messages"] == []
    assert {(r["id"], r["created"]) for r in soon["reminders"]} == {
        (r["id"], False) for r in accepted["reminders"]
    }

    # Once the reminders are sent, a later event is still covered.
    await _reminders_fall_due(runtime)
    await dispatcher.run_once()
    later = await _post(
        http, auth, _event("booking.starting_soon", starts_at, event_id="evt-soon-2")
    )
    assert later["messages"] == []
    assert {r["status"] for r in later["reminders"]} == {"submitted"}
    async with runtime.sessionmaker() as session:
        count = select(func.count()).select_from(Message)
        assert await session.scalar(count.where(Message.event_type == "booking.starting_soon")) == 2


async def test_starting_soon_covers_only_the_roles_with_a_reminder(
    http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    starts_at = _paris(3, 15)
    accepted = _event("booking.accepted", starts_at)
    del accepted["offeror"]  # booking.accepted need not name the offeror
    await _post(http, auth, accepted)
    soon = await _post(http, auth, _event("booking.starting_soon", starts_at))
    assert [m["role"] for m in soon["messages"]] == ["offeror"]
    assert [(r["role"], r["created"]) for r in soon["reminders"]] == [("asker", False)]


# -- cancelling -------------------------------------------------------------------


@pytest.mark.parametrize("settling", ["booking.cancelled", "booking.refused", "booking.expired"])
async def test_a_settling_event_cancels_the_waiting_reminders_and_refunds_them(
    http: httpx.AsyncClient, runtime: Runtime, settling: str
) -> None:
    shop = await make_client(runtime, quota=20)
    starts_at = _paris(3, 15)
    accepted = await _post(http, shop.auth, _event("booking.accepted", starts_at))
    assert await _balance(runtime, shop.id) == Decimal(17)

    settled = await _post(http, shop.auth, _event(settling, starts_at))
    sent_for_it = sum(m["credits"] for m in settled["messages"])
    for reminder in await _reminders(http, shop.auth):
        assert (reminder["status"], reminder["reason"]) == ("cancelled", "booking_changed")
    assert await _balance(runtime, shop.id) == Decimal(20 - 1 - sent_for_it)
    async with runtime.sessionmaker() as session:
        refunds = await session.scalars(
            select(CreditEntry.message_id).where(CreditEntry.kind == "refund")
        )
        assert set(refunds) == {r["id"] for r in accepted["reminders"]}

    # The booking comes back: its reminders are scheduled again.
    back = await _post(http, shop.auth, _event("booking.accepted", starts_at, event_id="evt-back"))
    assert [r["created"] for r in back["reminders"]] == [True, True]


async def test_a_reminder_cancelled_by_the_client_is_not_revived(
    http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    starts_at = _paris(3, 15)
    first = await _post(http, auth, _event("booking.accepted", starts_at))
    for reminder in first["reminders"]:
        await http.delete(f"/v1/messages/{reminder['id']}", headers=auth)
    again = await _post(http, auth, _event("booking.accepted", starts_at, event_id="evt-2"))
    assert {(r["status"], r["created"]) for r in again["reminders"]} == {("cancelled", False)}


# -- booking.requested schedules booking.expiring_soon ----------------------------


async def test_requested_schedules_expiring_soon_for_the_offeror(
    http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    starts_at = _paris(4, 15)  # expires a day earlier, at 15:00
    answer = await _post(http, auth, _event("booking.requested", starts_at))
    (reminder,) = answer["reminders"]
    assert (reminder["type"], reminder["role"], reminder["to"]) == (
        "booking.expiring_soon",
        "offeror",
        OFFEROR,
    )
    assert datetime.fromisoformat(reminder["send_at"]) == _paris(3, 13)
    (listed,) = await _reminders(http, auth)
    assert listed["text"].startswith("Anna is waiting for your answer: Kayak for two")


async def test_accepting_the_request_cancels_its_expiring_soon_reminder(
    http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    starts_at = _paris(4, 15)
    requested = await _post(http, auth, _event("booking.requested", starts_at))
    accepted = await _post(http, auth, _event("booking.accepted", starts_at))
    reminders = {r["id"]: r for r in await _reminders(http, auth)}
    assert reminders[requested["reminders"][0]["id"]]["status"] == "cancelled"
    assert {reminders[r["id"]]["status"] for r in accepted["reminders"]} == {"queued"}


async def test_no_reminders_when_turned_off(
    http: httpx.AsyncClient, auth: dict[str, str], runtime: Runtime
) -> None:
    runtime.settings = runtime.settings.model_copy(
        update={"reminders": runtime.settings.reminders.model_copy(update={"enabled": False})}
    )
    answer = await _post(http, auth, _event("booking.accepted", _paris(3, 15)))
    assert answer["reminders"] == []


async def test_a_booking_moved_too_close_for_a_reminder_loses_the_old_one(
    http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    first = await _post(http, auth, _event("booking.accepted", _paris(3, 15)))
    soon = datetime.now(UTC) + timedelta(hours=5)
    moved = await _post(http, auth, _event("booking.accepted", soon))
    assert moved["reminders"] == []
    statuses = {r["id"]: r["status"] for r in await _reminders(http, auth)}
    assert {statuses[r["id"]] for r in first["reminders"]} == {"cancelled"}


# -- events for one booking at the same moment -------------------------------------


async def test_events_for_one_booking_at_once_neither_deadlock_nor_lose_credits(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    """Every kind of event for the same bookings, posted together, many times over.

    Cancelling a reminder refunds it and a new event reserves credits: both touch
    the client's balance row. Each event takes that row last, so events racing
    for the same booking wait for each other instead of deadlocking (a deadlock
    would be answered 503). The credits still add up.
    """
    shop = await make_client(runtime, quota=100000)
    rounds, bookings = 4, 3
    for round_ in range(rounds):
        requested = [
            _event(
                "booking.requested",
                _paris(3, 15),
                event_id=f"req-{round_}-{b}",
                booking=_booking(f"b-{round_}-{b}", _paris(3, 15)),
            )
            for b in range(bookings)
        ]
        for body in requested:
            await _post(http, shop.auth, body)
        racing = [
            _event(
                kind,
                starts,
                event_id=f"{kind}-{round_}-{b}-{n}",
                booking=_booking(f"b-{round_}-{b}", starts),
            )
            for b in range(bookings)
            for n, (kind, starts) in enumerate(
                [
                    ("booking.accepted", _paris(3, 15)),
                    ("booking.accepted", _paris(4, 10)),
                    ("booking.cancelled", _paris(3, 15)),
                    ("booking.expiring_soon", _paris(3, 15)),
                    ("booking.requested", _paris(5, 11)),
                    ("booking.refused", _paris(3, 15)),
                ]
            )
        ]
        responses = await asyncio.gather(
            *(http.post("/v1/booking-events", json=body, headers=shop.auth) for body in racing)
        )
        assert [r.status_code for r in responses] == [202] * len(racing), [
            r.text for r in responses if r.status_code != 202
        ]
    async with runtime.sessionmaker() as session:
        entries = (
            await session.scalars(select(CreditEntry).where(CreditEntry.client_id == shop.id))
        ).all()
        statuses = {
            m: s for m, s in (await session.execute(select(Message.id, Message.status))).all()
        }
    held = {e.message_id: -e.delta for e in entries if e.kind == "reserve"}
    for e in entries:
        if e.kind == "refund":
            held.pop(e.message_id, None)
    balance = await _balance(runtime, shop.id)
    assert sum(e.delta for e in entries) == balance
    assert balance == Decimal(100000) - sum(held.values(), Decimal(0))
    # A cancelled message holds nothing; a queued one holds its credits.
    assert not [m for m in held if statuses[m] == "cancelled"]
    assert {m for m, s in statuses.items() if s == "queued"} <= set(held)


def _booking(booking_id: str, starts_at: datetime) -> dict[str, Any]:
    return {
        "id": booking_id,
        "title": "Kayak for two",
        "starts_at": starts_at.isoformat(),
        "expires_at": (starts_at - timedelta(days=1)).isoformat(),
    }


async def test_a_cancelled_reminder_is_reported_once(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    hooked = (await make_client(runtime, "hooked", webhook_url="https://shop.example/hooks")).auth
    starts_at = _paris(4, 15)
    requested = await _post(http, hooked, _event("booking.requested", starts_at))
    await _post(http, hooked, _event("booking.accepted", starts_at))
    reminder_id = requested["reminders"][0]["id"]
    listed = await http.get("/v1/webhook-deliveries", params={"limit": 100}, headers=hooked)
    assert listed.status_code == 200, listed.text
    about_reminder = [
        item["payload"]["data"]["status"]
        for item in listed.json()["items"]
        if item["event_type"] == "message.status"
        and item["payload"]["data"]["message_id"] == reminder_id
    ]
    assert about_reminder == ["cancelled"]
