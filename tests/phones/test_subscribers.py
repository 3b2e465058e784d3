"""The subscriber list, the status a number shows, and suspending a number."""

from __future__ import annotations

import base64
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from smsgateway.config import Settings
from smsgateway.db import utcnow
from smsgateway.messages.dispatcher import Dispatcher
from smsgateway.models.clients import ApiClient
from smsgateway.models.messages import Message
from smsgateway.models.phones import NumberState, UserPhone
from smsgateway.pricing import Pricing
from smsgateway.providers.fake import FakeProvider
from smsgateway.runtime import Runtime
from tests.conftest import booking_event
from tests.factories import make_client, make_number_state

ANNA = "+33601020304"
MARC = "+33611223344"
PIOTR = "+48512345678"
JOE = "+12025550123"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"verification": settings.verification.model_copy(update={"required": True})}
    )


async def register(
    http: httpx.AsyncClient, auth: dict[str, str], user_ref: str, phone: str
) -> dict[str, Any]:
    response = await http.put(f"/v1/users/{user_ref}/phone", json={"phone": phone}, headers=auth)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def mark_verified(runtime: Runtime, user_ref: str) -> None:
    async with runtime.sessionmaker() as session, session.begin():
        phone = await session.scalar(select(UserPhone).where(UserPhone.user_ref == user_ref))
        assert phone is not None
        phone.status, phone.verified_at = "verified", utcnow()


async def status_of(http: httpx.AsyncClient, auth: dict[str, str], user_ref: str) -> str:
    status: str = (await http.get(f"/v1/users/{user_ref}/phone", headers=auth)).json()["status"]
    return status


async def test_get_shows_opted_out_and_suspended_before_verification(
    http: httpx.AsyncClient, auth: dict[str, str], runtime: Runtime
) -> None:
    await register(http, auth, "anna", ANNA)
    await register(http, auth, "marc", MARC)
    await register(http, auth, "piotr", PIOTR)
    await register(http, auth, "joe", JOE)
    for user_ref in ("anna", "marc", "piotr"):
        await mark_verified(runtime, user_ref)
    await make_number_state(runtime, ANNA, opted_out=True)
    await make_number_state(runtime, MARC, suspended=True)
    await make_number_state(runtime, PIOTR, opted_out=True, suspended=True)

    assert await status_of(http, auth, "anna") == "opted_out"
    assert await status_of(http, auth, "marc") == "suspended"
    assert await status_of(http, auth, "piotr") == "opted_out"
    assert await status_of(http, auth, "joe") == "pending"


async def test_subscriber_list_with_status_filter_and_credits_per_sms(
    http: httpx.AsyncClient, auth: dict[str, str], runtime: Runtime
) -> None:
    runtime.pricing = Pricing(by_country={"PL": Decimal("1.5"), "US": Decimal("2.5")})
    await register(http, auth, "anna", ANNA)
    await register(http, auth, "marc", MARC)
    await register(http, auth, "piotr", PIOTR)
    await register(http, auth, "joe", JOE)
    await mark_verified(runtime, "piotr")
    await make_number_state(runtime, MARC, opted_out=True)
    await make_number_state(runtime, JOE, suspended=True)
    other = await make_client(runtime, "other")
    await register(http, other.auth, "zoe", "+33612345678")

    listed = await http.get("/v1/phones", headers=auth)
    assert listed.status_code == 200
    items = listed.json()["items"]
    # Newest first, only this client's numbers.
    assert [(i["user_ref"], i["phone"], i["country"], i["status"]) for i in items] == [
        ("joe", JOE, "US", "suspended"),
        ("piotr", PIOTR, "PL", "verified"),
        ("marc", MARC, "FR", "opted_out"),
        ("anna", ANNA, "FR", "pending"),
    ]
    assert [i["credits_per_sms"] for i in items] == [2.5, 1.5, 1, 1]
    assert listed.json()["next_cursor"] is None

    async def only(status: str) -> list[str]:
        response = await http.get("/v1/phones", params={"status": status}, headers=auth)
        return [i["user_ref"] for i in response.json()["items"]]

    assert await only("pending") == ["anna"]
    assert await only("verified") == ["piotr"]
    assert await only("opted_out") == ["marc"]
    assert await only("suspended") == ["joe"]
    bad = await http.get("/v1/phones", params={"status": "active"}, headers=auth)
    assert bad.status_code == 422


async def test_subscriber_list_pages(
    http: httpx.AsyncClient, auth: dict[str, str], runtime: Runtime
) -> None:
    for n, phone in enumerate((ANNA, MARC, PIOTR, JOE)):
        await register(http, auth, f"u{n}", phone)
    seen: list[str] = []
    cursor = None
    for _ in range(3):
        params: dict[str, Any] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = (await http.get("/v1/phones", params=params, headers=auth)).json()
        seen += [i["user_ref"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ["u3", "u2", "u1", "u0"]
    huge = base64.urlsafe_b64encode(b"p99999999999").decode()  # past a 32-bit id
    for cursor in ("nonsense!", huge):
        bad = await http.get("/v1/phones", params={"cursor": cursor}, headers=auth)
        assert bad.status_code == 400
        assert bad.json()["type"].endswith("/invalid-cursor")


async def post_accepted(
    http: httpx.AsyncClient, auth: dict[str, str], event_id: str
) -> dict[str, Any]:
    body = booking_event("booking.accepted", event_id=event_id)
    body["asker"]["user_ref"] = "anna"
    del body["asker"]["phone"]
    response = await http.post("/v1/booking-events", json=body, headers=auth)
    assert response.status_code == 202, response.text
    message: dict[str, Any] = response.json()["messages"][0]
    return message


@pytest.mark.parametrize("path_number", [ANNA, "%2B33601020304", "33601020304"])
async def test_suspend_blocks_booking_sms_and_reactivate_lets_them_go(
    http: httpx.AsyncClient,
    auth: dict[str, str],
    runtime: Runtime,
    dispatcher: Dispatcher,
    provider: FakeProvider,
    path_number: str,
) -> None:
    await register(http, auth, "anna", ANNA)
    await mark_verified(runtime, "anna")
    await dispatcher.run_once()  # the verification SMS
    sent_before = len(provider.sent)

    suspended = await http.patch(
        f"/v1/phones/{path_number}", json={"status": "suspended"}, headers=auth
    )
    assert suspended.status_code == 200, suspended.text
    assert suspended.json()["phone"] == ANNA
    assert suspended.json()["status"] == "suspended"
    assert suspended.json()["suspended_at"] is not None
    assert suspended.json()["credits_per_sms"] == 1
    assert await status_of(http, auth, "anna") == "suspended"

    message = await post_accepted(http, auth, "evt-1")
    assert (message["status"], message["reason"], message["credits"]) == (
        "blocked",
        "suspended",
        0,
    )

    reactivated = await http.patch(
        f"/v1/phones/{path_number}", json={"status": "active"}, headers=auth
    )
    assert reactivated.json()["status"] == "active"
    assert reactivated.json()["suspended_at"] is None
    assert await status_of(http, auth, "anna") == "verified"
    message = await post_accepted(http, auth, "evt-2")
    assert message["status"] == "queued"
    await dispatcher.run_once()
    assert [job.receivers for job in provider.sent[sent_before:]] == [[ANNA]]


async def test_suspending_blocks_and_refunds_messages_still_queued(
    http: httpx.AsyncClient, runtime: Runtime, dispatcher: Dispatcher, provider: FakeProvider
) -> None:
    paying = await make_client(runtime, "paying", quota=10)
    auth = paying.auth
    verification_id = (await register(http, auth, "anna", ANNA))["verification"]["message_id"]
    first = await http.patch(f"/v1/phones/{ANNA}", json={"status": "suspended"}, headers=auth)
    # Suspending twice keeps the first time.
    again = await http.patch(f"/v1/phones/{ANNA}", json={"status": "suspended"}, headers=auth)
    assert again.json()["suspended_at"] == first.json()["suspended_at"]

    await dispatcher.run_once()
    assert provider.sent == []
    async with runtime.sessionmaker() as session:
        message = await session.get(Message, verification_id)
        client = await session.get(ApiClient, paying.id)
    assert message is not None and client is not None
    assert (message.status, message.reason) == ("blocked", "suspended")
    assert client.balance == Decimal(10)


async def test_an_opted_out_number_stays_opted_out_when_reactivated(
    http: httpx.AsyncClient, auth: dict[str, str], runtime: Runtime
) -> None:
    await register(http, auth, "anna", ANNA)
    await make_number_state(runtime, ANNA, opted_out=True, suspended=True)
    response = await http.patch(f"/v1/phones/{ANNA}", json={"status": "active"}, headers=auth)
    assert response.status_code == 200
    assert response.json()["status"] == "opted_out"
    assert response.json()["suspended_at"] is None


async def test_only_numbers_of_the_clients_users_can_be_suspended(
    http: httpx.AsyncClient, auth: dict[str, str], runtime: Runtime
) -> None:
    other = await make_client(runtime, "other")
    await register(http, other.auth, "anna", ANNA)
    response = await http.patch(f"/v1/phones/{ANNA}", json={"status": "suspended"}, headers=auth)
    assert response.status_code == 404
    assert response.json()["type"].endswith("/phone-not-found")
    async with runtime.sessionmaker() as session:
        assert await session.get(NumberState, ANNA) is None


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/v1/phones/123", {"status": "suspended"}, 422),
        ("/v1/phones/not-a-number", {"status": "suspended"}, 422),
        (f"/v1/phones/{ANNA}", {"status": "deleted"}, 422),
        (f"/v1/phones/{ANNA}", {}, 422),
    ],
)
async def test_bad_suspension_requests_are_problems(
    http: httpx.AsyncClient, auth: dict[str, str], path: str, body: dict[str, Any], status: int
) -> None:
    await register(http, auth, "anna", ANNA)
    response = await http.patch(path, json=body, headers=auth)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"


async def test_phone_routes_need_an_api_key(http: httpx.AsyncClient) -> None:
    for method, path in [
        ("GET", "/v1/phones"),
        ("GET", "/v1/users/u-1/phone"),
        ("PUT", "/v1/users/u-1/phone"),
        ("PATCH", f"/v1/phones/{ANNA}"),
    ]:
        response = await http.request(method, path, json={"phone": ANNA})
        assert response.status_code == 401, (method, path)
