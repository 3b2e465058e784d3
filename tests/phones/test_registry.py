"""Registering a user's number and verifying it by reply or by one-time code."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from smsgateway.config import Settings
from smsgateway.db import utcnow
from smsgateway.messages.dispatcher import Dispatcher
from smsgateway.models.clients import ApiClient
from smsgateway.models.messages import Message
from smsgateway.models.phones import NumberState, UserPhone
from smsgateway.models.webhooks import WebhookDelivery
from smsgateway.phones.registry import registrations_for
from smsgateway.phones.verification import verify_by_reply
from smsgateway.providers.fake import FakeProvider
from smsgateway.runtime import Runtime
from smsgateway.texts import verification_text
from tests.conftest import booking_event
from tests.factories import make_client, make_number_state

ANNA = "+33601020304"
MARC = "+33611223344"
WEBHOOK_URL = "https://marketplace.example/hooks"
REPLY_TEXT = "marketplace: reply YES to confirm this number for SMS notifications."
CODE_TEXT = re.compile(
    r"^marketplace: your verification code is (\d{6})\. It expires in 10 minutes\.$"
)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # The product default: booking SMS go only to verified numbers.
    return settings.model_copy(
        update={"verification": settings.verification.model_copy(update={"required": True})}
    )


@pytest.fixture
async def api_key(runtime: Runtime) -> str:
    return (await make_client(runtime, "marketplace", webhook_url=WEBHOOK_URL)).api_key


async def put_phone(
    http: httpx.AsyncClient, auth: dict[str, str], user_ref: str = "u-1", **body: Any
) -> httpx.Response:
    body.setdefault("phone", ANNA)
    return await http.put(f"/v1/users/{user_ref}/phone", json=body, headers=auth)


async def verify(
    http: httpx.AsyncClient, auth: dict[str, str], code: str, user_ref: str = "u-1"
) -> httpx.Response:
    return await http.post(f"/v1/users/{user_ref}/phone/verify", json={"code": code}, headers=auth)


async def stored_code(runtime: Runtime, message_id: str) -> str:
    async with runtime.sessionmaker() as session:
        message = await session.get(Message, message_id)
    assert message is not None
    match = CODE_TEXT.match(message.text)
    assert match, message.text
    return match.group(1)


async def count(runtime: Runtime, model: type[Any]) -> int:
    async with runtime.sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def webhooks(runtime: Runtime, event_type: str) -> list[dict[str, Any]]:
    async with runtime.sessionmaker() as session:
        rows = await session.scalars(
            select(WebhookDelivery).where(WebhookDelivery.event_type == event_type)
        )
        return [row.payload["data"] for row in rows]


def assert_problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["type"].endswith("/" + slug), body
    return body


# -- registration --------------------------------------------------------------------


async def test_registering_sends_exactly_one_verification_sms(
    http: httpx.AsyncClient,
    auth: dict[str, str],
    dispatcher: Dispatcher,
    provider: FakeProvider,
    runtime: Runtime,
) -> None:
    first = await put_phone(http, auth, phone="+33 6 01 02 03 04")
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["user_ref"] == "u-1"
    assert body["phone"] == ANNA
    assert body["country"] == "FR"
    assert body["method"] == "reply"
    assert body["status"] == "pending"
    assert body["verified_at"] is None
    verification = body["verification"]
    assert verification["attempts_left"] is None
    assert verification["message_id"]

    await dispatcher.run_once()
    assert [(job.receivers, job.text) for job in provider.sent] == [([ANNA], REPLY_TEXT)]

    # The same number again (a retried request): nothing more is sent.
    again = await put_phone(http, auth)
    assert again.status_code == 200
    assert again.json()["verification"] == verification
    await dispatcher.run_once()
    assert len(provider.sent) == 1
    assert await count(runtime, Message) == 1

    async with runtime.sessionmaker() as session:
        message = await session.get(Message, verification["message_id"])
    assert message is not None
    assert (message.event_type, message.role, message.user_ref, message.tag) == (
        "phone.verification",
        None,
        "u-1",
        None,
    )


async def test_the_sms_is_in_the_users_language_and_names_the_service(
    http: httpx.AsyncClient,
    auth: dict[str, str],
    dispatcher: Dispatcher,
    provider: FakeProvider,
    runtime: Runtime,
) -> None:
    runtime.settings.verification.service_name = "Kayakr"
    assert (await put_phone(http, auth, language="fr-CA")).status_code == 201
    assert (await put_phone(http, auth, "u-2", phone=MARC, language="DE")).status_code == 201
    await dispatcher.run_once()
    texts = {job.receivers[0]: job.text for job in provider.sent}
    assert texts[ANNA] == (
        "Kayakr : répondez OUI pour confirmer ce numéro pour les notifications SMS."
    )
    assert texts[MARC] == (
        "Kayakr: Antworten Sie JA, um diese Nummer für SMS-Benachrichtigungen zu bestätigen."
    )
    async with runtime.sessionmaker() as session:
        encodings = set((await session.scalars(select(Message.encoding))).all())
    assert encodings == {"gsm7"}


async def test_delete_then_put_sends_a_new_sms(
    http: httpx.AsyncClient, auth: dict[str, str], dispatcher: Dispatcher, provider: FakeProvider
) -> None:
    first = (await put_phone(http, auth)).json()
    await dispatcher.run_once()

    deleted = await http.delete("/v1/users/u-1/phone", headers=auth)
    assert deleted.status_code == 204
    assert_problem(await http.get("/v1/users/u-1/phone", headers=auth), 404, "phone-not-found")

    second = await put_phone(http, auth)
    assert second.status_code == 201
    assert second.json()["verification"]["message_id"] != first["verification"]["message_id"]
    await dispatcher.run_once()
    assert [job.receivers for job in provider.sent] == [[ANNA], [ANNA]]


async def test_delete_cancels_a_verification_sms_not_sent_yet(
    http: httpx.AsyncClient,
    auth: dict[str, str],
    dispatcher: Dispatcher,
    provider: FakeProvider,
    runtime: Runtime,
) -> None:
    message_id = (await put_phone(http, auth)).json()["verification"]["message_id"]
    assert (await http.delete("/v1/users/u-1/phone", headers=auth)).status_code == 204
    await dispatcher.run_once()
    assert provider.sent == []
    async with runtime.sessionmaker() as session:
        message = await session.get(Message, message_id)
    assert message is not None
    assert message.status == "cancelled"


async def test_another_number_or_method_must_be_deleted_first(
    http: httpx.AsyncClient, auth: dict[str, str], runtime: Runtime
) -> None:
    await put_phone(http, auth)
    assert_problem(await put_phone(http, auth, phone=MARC), 409, "phone-already-registered")
    assert_problem(await put_phone(http, auth, method="code"), 409, "verification-method-differs")
    assert await count(runtime, Message) == 1


async def test_repeating_the_put_may_change_the_language_only(
    http: httpx.AsyncClient, auth: dict[str, str], runtime: Runtime
) -> None:
    await put_phone(http, auth, language="en")
    again = await put_phone(http, auth, language="pt_br", method="reply")
    assert again.status_code == 200
    assert again.json()["language"] == "pt-BR"
    assert await count(runtime, Message) == 1


async def test_concurrent_registrations_send_one_sms(
    http: httpx.AsyncClient, auth: dict[str, str], runtime: Runtime
) -> None:
    responses = await asyncio.gather(*(put_phone(http, auth) for _ in range(6)))
    assert sorted(r.status_code for r in responses) == [200] * 5 + [201]
    assert len({r.json()["verification"]["message_id"] for r in responses}) == 1
    assert await count(runtime, Message) == 1
    assert await count(runtime, UserPhone) == 1


@pytest.mark.parametrize(
    ("phone", "slug"),
    [
        ("+33 1", "invalid-phone"),
        ("not a number", "invalid-phone"),
        ("0601020304", "invalid-phone"),  # national, and the server has no default region
        ("+33142868200", "not-mobile"),  # a Paris landline
    ],
)
async def test_invalid_and_landline_numbers_are_refused(
    http: httpx.AsyncClient, auth: dict[str, str], runtime: Runtime, phone: str, slug: str
) -> None:
    body = assert_problem(await put_phone(http, auth, phone=phone), 422, slug)
    assert body["errors"][0]["field"] == "body.phone"
    assert phone not in str(body)  # numbers are never echoed
    assert await count(runtime, UserPhone) == 0


@pytest.mark.parametrize(
    "body",
    [
        {"phone": ""},
        {"phone": ANNA, "method": "carrier-pigeon"},
        {"phone": ANNA, "language": "not a language"},
        {"phone": ANNA, "extra": 1},
    ],
)
async def test_bad_bodies_are_422_problems(
    http: httpx.AsyncClient, auth: dict[str, str], body: dict[str, Any]
) -> None:
    response = await http.put("/v1/users/u-1/phone", json=body, headers=auth)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"


async def test_national_numbers_use_the_default_region(
    http: httpx.AsyncClient, auth: dict[str, str], runtime: Runtime
) -> None:
    runtime.settings.locale.default_region = "FR"
    response = await put_phone(http, auth, phone="06 01 02 03 04")
    assert response.status_code == 201
    assert response.json()["phone"] == ANNA


async def test_unknown_user_ref_is_404_everywhere(
    http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    assert_problem(await http.get("/v1/users/nobody/phone", headers=auth), 404, "phone-not-found")
    assert_problem(
        await http.delete("/v1/users/nobody/phone", headers=auth), 404, "phone-not-found"
    )
    assert_problem(await verify(http, auth, "123456", "nobody"), 404, "phone-not-found")


async def test_registrations_are_per_client(
    http: httpx.AsyncClient, auth: dict[str, str], runtime: Runtime
) -> None:
    await put_phone(http, auth)
    other_auth = (await make_client(runtime, "other-marketplace")).auth
    unknown = await http.get("/v1/users/u-1/phone", headers=other_auth)
    assert_problem(unknown, 404, "phone-not-found")
    # The same user_ref and number at another client is a registration of its own.
    assert (await put_phone(http, other_auth)).status_code == 201


async def test_no_credits_means_402_and_nothing_stored(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    broke = await make_client(runtime, "broke", quota=0)
    response = await put_phone(http, broke.auth)
    body = assert_problem(response, 402, "insufficient-credits")
    assert body["credits_needed"] == 1
    assert await count(runtime, UserPhone) == 0
    assert await count(runtime, Message) == 0


async def test_the_verification_sms_is_charged(http: httpx.AsyncClient, runtime: Runtime) -> None:
    paying = await make_client(runtime, "paying", quota=10)
    await put_phone(http, paying.auth)
    async with runtime.sessionmaker() as session:
        row = await session.get(ApiClient, paying.id)
        assert row is not None
        assert row.balance == Decimal(9)


async def test_an_opted_out_number_is_registered_but_gets_no_sms(
    http: httpx.AsyncClient,
    auth: dict[str, str],
    dispatcher: Dispatcher,
    provider: FakeProvider,
    runtime: Runtime,
) -> None:
    await make_number_state(runtime, ANNA, opted_out=True)
    response = await put_phone(http, auth)
    assert response.status_code == 201
    assert response.json()["status"] == "opted_out"
    assert response.json()["verification"] is None
    assert await count(runtime, Message) == 0

    # The user sends START: registering again now sends the one verification SMS.
    async with runtime.sessionmaker() as session, session.begin():
        await session.execute(update(NumberState).values(opted_out_at=None))
    again = await put_phone(http, auth)
    assert again.status_code == 200
    assert again.json()["status"] == "pending"
    assert again.json()["verification"] is not None
    await put_phone(http, auth)
    await dispatcher.run_once()
    assert [job.receivers for job in provider.sent] == [[ANNA]]


@pytest.mark.parametrize(
    ("language", "ttl", "expected"),
    [
        ("en", 600, "Kayakr: your verification code is 482913. It expires in 10 minutes."),
        (
            "fr",
            600,
            "Kayakr : votre code de vérification est 482913. Il expire dans 10 minutes.",
        ),
        ("de", 60, "Kayakr: Ihr Bestätigungscode lautet 482913. Er läuft in 1 Minute ab."),
        ("pl", 119, "Kayakr: your verification code is 482913. It expires in 1 minute."),
    ],
)
def test_code_texts(language: str, ttl: int, expected: str) -> None:
    text, _ = verification_text(
        "code", language, "en", service="Kayakr", code="482913", ttl_seconds=ttl
    )
    assert text == expected


# -- method: code --------------------------------------------------------------------


async def test_code_method_wrong_then_right_code(
    http: httpx.AsyncClient,
    auth: dict[str, str],
    dispatcher: Dispatcher,
    provider: FakeProvider,
    runtime: Runtime,
) -> None:
    created = await put_phone(http, auth, method="code")
    assert created.status_code == 201
    body = created.json()
    assert body["method"] == "code"
    verification = body["verification"]
    assert verification["attempts_left"] == 5
    sent_at = verification["sent_at"]
    assert verification["expires_at"] > sent_at

    await dispatcher.run_once()
    match = CODE_TEXT.match(provider.sent[0].text)
    assert match, provider.sent[0].text
    code = match.group(1)
    async with runtime.sessionmaker() as session:
        phone = await session.scalar(select(UserPhone))
    assert phone is not None and phone.code_hash is not None
    assert code not in phone.code_hash  # only a salted hash is stored

    wrong = "000000" if code != "000000" else "111111"
    for left in (4, 3):
        problem = assert_problem(await verify(http, auth, wrong), 422, "wrong-code")
        assert problem["attempts_left"] == left
    shown = (await http.get("/v1/users/u-1/phone", headers=auth)).json()
    assert (shown["status"], shown["verification"]["attempts_left"]) == ("pending", 3)

    right = await verify(http, auth, f"{code[:3]} {code[3:]}")
    assert right.status_code == 200, right.text
    assert right.json()["status"] == "verified"
    assert right.json()["verified_at"] is not None
    assert await webhooks(runtime, "phone.verified") == [
        {"user_ref": "u-1", "phone": ANNA, "method": "code"}
    ]
    # Verified is final: asking again is harmless and sends no second webhook.
    assert (await verify(http, auth, code)).json()["status"] == "verified"
    assert len(await webhooks(runtime, "phone.verified")) == 1
    # The used code no longer sits in the stored SMS text.
    async with runtime.sessionmaker() as session:
        message = await session.get(Message, verification["message_id"])
    assert message is not None
    assert code not in message.text


async def test_an_expired_code_is_refused_even_when_right(
    http: httpx.AsyncClient, auth: dict[str, str], runtime: Runtime
) -> None:
    message_id = (await put_phone(http, auth, method="code")).json()["verification"]["message_id"]
    code = await stored_code(runtime, message_id)
    async with runtime.sessionmaker() as session, session.begin():
        await session.execute(
            update(UserPhone).values(code_expires_at=utcnow() - timedelta(seconds=1))
        )
    assert_problem(await verify(http, auth, code), 410, "code-expired")
    assert (await http.get("/v1/users/u-1/phone", headers=auth)).json()["status"] == "pending"
    assert await webhooks(runtime, "phone.verified") == []


async def test_too_many_wrong_codes_lock_the_code(
    http: httpx.AsyncClient, auth: dict[str, str], runtime: Runtime
) -> None:
    message_id = (await put_phone(http, auth, method="code")).json()["verification"]["message_id"]
    code = await stored_code(runtime, message_id)
    wrong = "000000" if code != "000000" else "111111"
    lefts = [(await verify(http, auth, wrong)).json()["attempts_left"] for _ in range(5)]
    assert lefts == [4, 3, 2, 1, 0]
    # Even the right code is refused now: that is what stops guessing.
    problem = assert_problem(await verify(http, auth, code), 429, "too-many-attempts")
    assert "DELETE" in problem["detail"]
    assert (await http.get("/v1/users/u-1/phone", headers=auth)).json()["status"] == "pending"

    # The way out: delete and register again, with a new code.
    await http.delete("/v1/users/u-1/phone", headers=auth)
    new_id = (await put_phone(http, auth, method="code")).json()["verification"]["message_id"]
    assert (await verify(http, auth, await stored_code(runtime, new_id))).status_code == 200


async def test_parallel_guesses_cannot_pass_the_limit(
    http: httpx.AsyncClient, auth: dict[str, str], runtime: Runtime
) -> None:
    message_id = (await put_phone(http, auth, method="code")).json()["verification"]["message_id"]
    code = await stored_code(runtime, message_id)
    wrong = [f"{n:06d}" for n in range(12) if f"{n:06d}" != code][:10]
    responses = await asyncio.gather(*(verify(http, auth, guess) for guess in wrong))
    assert sorted(r.status_code for r in responses) == [422] * 5 + [429] * 5


async def test_malformed_codes_spend_no_attempt(
    http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    await put_phone(http, auth, method="code")
    for malformed in ("12345", "1234567", "12a456", "١٢٣٤٥٦"):
        response = await verify(http, auth, malformed)
        assert_problem(response, 422, "validation-error")
    shown = (await http.get("/v1/users/u-1/phone", headers=auth)).json()
    assert shown["verification"]["attempts_left"] == 5


async def test_a_reply_registration_has_no_code_to_check(
    http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    await put_phone(http, auth)
    assert_problem(await verify(http, auth, "123456"), 409, "no-code-sent")


async def test_numbers_that_cannot_reply_default_to_code(
    http: httpx.AsyncClient, auth: dict[str, str], runtime: Runtime
) -> None:
    german = await put_phone(http, auth, phone="+4915112345678")
    assert german.json()["method"] == "code"
    refused = await put_phone(http, auth, "u-2", phone="+4915112345678", method="reply")
    assert_problem(refused, 422, "reply-not-possible")
    # With an alphanumeric sender no reply can come back, even from France.
    runtime.settings.ovh.sender = "Kayakr"
    assert (await put_phone(http, auth, "u-3")).json()["method"] == "code"


# -- method: reply (the reply reader calls verify_by_reply) ---------------------------


async def test_a_yes_reply_verifies_pending_registrations_of_every_client(
    http: httpx.AsyncClient, auth: dict[str, str], runtime: Runtime
) -> None:
    await put_phone(http, auth)
    other = await make_client(runtime, "other", webhook_url=WEBHOOK_URL + "/2")
    await put_phone(http, other.auth, "anna")
    await put_phone(http, auth, "u-code", method="code")  # not verified by a reply

    async with runtime.sessionmaker() as session, session.begin():
        verified = await verify_by_reply(session, ANNA)
        assert sorted(p.user_ref for p in verified) == ["anna", "u-1"]
        assert all(p.status == "verified" and p.verified_at for p in verified)
        assert len(await registrations_for(session, ANNA)) == 3

    shown = (await http.get("/v1/users/u-1/phone", headers=auth)).json()
    assert shown["status"] == "verified"
    data = await webhooks(runtime, "phone.verified")
    assert sorted(data, key=lambda d: d["user_ref"]) == [
        {"user_ref": "anna", "phone": ANNA, "method": "reply"},
        {"user_ref": "u-1", "phone": ANNA, "method": "reply"},
    ]
    # A second YES changes nothing.
    async with runtime.sessionmaker() as session, session.begin():
        assert await verify_by_reply(session, ANNA) == []
    assert len(await webhooks(runtime, "phone.verified")) == 2


async def test_a_reply_after_48_hours_verifies_nothing(
    http: httpx.AsyncClient, auth: dict[str, str], runtime: Runtime
) -> None:
    await put_phone(http, auth)
    async with runtime.sessionmaker() as session, session.begin():
        await session.execute(
            update(UserPhone).values(verification_sent_at=utcnow() - timedelta(hours=48, minutes=1))
        )
    async with runtime.sessionmaker() as session, session.begin():
        assert await verify_by_reply(session, ANNA) == []
        assert await verify_by_reply(session, MARC) == []
    assert (await http.get("/v1/users/u-1/phone", headers=auth)).json()["status"] == "pending"
    assert await webhooks(runtime, "phone.verified") == []


async def test_register_verify_reply_end_to_end(
    http: httpx.AsyncClient,
    auth: dict[str, str],
    dispatcher: Dispatcher,
    provider: FakeProvider,
    runtime: Runtime,
) -> None:
    await put_phone(http, auth, language="fr")
    await dispatcher.run_once()
    assert provider.sent[0].text == (
        "marketplace : répondez OUI pour confirmer ce numéro pour les notifications SMS."
    )
    async with runtime.sessionmaker() as session, session.begin():
        assert [p.user_ref for p in await verify_by_reply(session, ANNA)] == ["u-1"]
    shown = (await http.get("/v1/users/u-1/phone", headers=auth)).json()
    assert (shown["status"], shown["method"]) == ("verified", "reply")
    assert await webhooks(runtime, "phone.verified") == [
        {"user_ref": "u-1", "phone": ANNA, "method": "reply"}
    ]


# -- verified numbers get booking SMS -----------------------------------------------


async def test_booking_sms_go_to_the_registered_number_once_verified(
    http: httpx.AsyncClient,
    auth: dict[str, str],
    dispatcher: Dispatcher,
    provider: FakeProvider,
    runtime: Runtime,
) -> None:
    registered = await put_phone(http, auth, method="code", language="fr")
    code = await stored_code_fr(runtime, registered.json()["verification"]["message_id"])

    def event(event_id: str) -> dict[str, Any]:
        body = booking_event("booking.accepted", event_id=event_id)
        del body["asker"]["phone"]  # the registered number is used
        del body["asker"]["language"]  # and the registered language
        return body

    before = await http.post("/v1/booking-events", json=event("evt-1"), headers=auth)
    message = before.json()["messages"][0]
    assert (message["status"], message["reason"]) == ("blocked", "unverified")

    assert (await verify(http, auth, code)).status_code == 200
    after = await http.post("/v1/booking-events", json=event("evt-2"), headers=auth)
    message = after.json()["messages"][0]
    assert (message["status"], message["to"]) == ("queued", ANNA)

    await dispatcher.run_once()
    # The verification SMS and the booking SMS, sent side by side in one pass.
    texts = sorted(job.text for job in provider.sent)
    assert len(texts) == 2
    assert texts[0].startswith("Bonne nouvelle : Marc a accepté")
    assert texts[1].startswith("marketplace : votre code de vérification est ")


async def stored_code_fr(runtime: Runtime, message_id: str) -> str:
    async with runtime.sessionmaker() as session:
        message = await session.get(Message, message_id)
    assert message is not None
    assert message.text.startswith("marketplace : votre code de vérification est ")
    assert message.text.endswith(". Il expire dans 10 minutes.")
    match = re.search(r"\d{6}", message.text)
    assert match
    return match.group(0)


async def test_the_code_is_not_kept_readable_once_the_sms_has_left(
    http: httpx.AsyncClient,
    auth: dict[str, str],
    dispatcher: Dispatcher,
    provider: FakeProvider,
    runtime: Runtime,
) -> None:
    registered = await http.put(
        "/v1/users/u-9/phone", json={"phone": "+33611223344", "method": "code"}, headers=auth
    )
    assert registered.status_code == 201, registered.text
    await dispatcher.run_once()
    sent_code = re.search(r"\b\d{6}\b", provider.sent[-1].text)
    assert sent_code is not None  # the user got the code
    async with runtime.sessionmaker() as session:
        stored = await session.scalar(select(Message.text).where(Message.user_ref == "u-9"))
    assert stored is not None and sent_code.group() not in stored
    assert "******" in stored
