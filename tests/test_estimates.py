"""POST /v1/estimates: parts, credits and cost per country, before anything is sent."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from smsgateway.config import Settings
from smsgateway.errors import PROBLEM_JSON
from smsgateway.models.messages import Message
from smsgateway.providers.fake import FakeProvider
from smsgateway.runtime import Runtime
from smsgateway.templates.schemas import PLACEHOLDER_VALUE_MAX_LENGTH

# Different rates per country and a credit price other than the built-in one, so every
# number below is checked against the file rather than the defaults.
PRICING = {
    "currency": "EUR",
    "credit_price": 0.05,
    "default_credits_per_part": 1,
    "countries": {"FR": 1, "PL": 1.5, "US": 2.5},
}
FR, PL, US = "+33601020304", "+48512345678", "+12025550123"
TWO_PARTS = "a" * 161  # 161 septets: two GSM-7 parts


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    path = tmp_path / "pricing.json"
    path.write_text(json.dumps(PRICING), encoding="utf-8")
    return settings.model_copy(
        update={"pricing": settings.pricing.model_copy(update={"file": path})}
    )


async def test_mixed_list_is_priced_per_country_and_nothing_is_stored(
    http: httpx.AsyncClient, auth: dict[str, str], runtime: Runtime, provider: FakeProvider
) -> None:
    to = [FR, "+48 512 345 678", US, "+33 1", "not a number", "+999"]
    response = await http.post("/v1/estimates", json={"to": to, "text": TWO_PARTS}, headers=auth)
    assert response.status_code == 200, response.text
    body = response.json()
    assert [
        (r["to"], r["country"], r["encoding"], r["segments"], r["credits"], r["cost"])
        for r in body["recipients"]
    ] == [
        (FR, "FR", "gsm7", 2, 2, 0.1),  # 2 parts x 1 credit x 0.05
        (PL, "PL", "gsm7", 2, 3, 0.15),  # 2 parts x 1.5 credits
        (US, "US", "gsm7", 2, 5, 0.25),  # 2 parts x 2.5 credits
    ]
    assert [(i["to"], i["reason"]) for i in body["invalid"]] == [
        ("+33 1", "invalid_phone"),
        ("not a number", "invalid_phone"),
        ("+999", "invalid_phone"),
    ]
    assert all(i["detail"] for i in body["invalid"])
    assert body["totals"] == {
        "recipients": 3,
        "invalid": 3,
        "segments": 6,
        "credits": 10,
        "cost": 0.5,
        "currency": "EUR",
    }
    assert (body["text"], body["language"]) == (TWO_PARTS, None)

    async with runtime.sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(Message)) == 0
    assert provider.sent == []


async def test_a_country_without_a_rate_uses_the_default(
    http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    response = await http.post(
        "/v1/estimates", json={"to": ["+4915123456789"], "text": "Hello"}, headers=auth
    )
    recipient = response.json()["recipients"][0]
    assert (recipient["country"], recipient["credits"], recipient["cost"]) == ("DE", 1, 0.05)


async def test_ucs2_and_the_stop_mention_are_counted(
    http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    async def segments(text: str, **extra: object) -> tuple[str, int]:
        response = await http.post(
            "/v1/estimates", json={"to": [FR], "text": text, **extra}, headers=auth
        )
        recipient = response.json()["recipients"][0]
        return recipient["encoding"], recipient["segments"]

    assert await segments("a" * 150) == ("gsm7", 1)
    # OVHcloud's STOP mention (newline, STOP, short number: 11 characters) tips it over.
    assert await segments("a" * 150, no_stop_clause=False) == ("gsm7", 2)
    assert await segments("ê" * 70) == ("ucs2", 1)
    assert await segments("ê" * 71) == ("ucs2", 2)
    # Smart encoding: a typographic apostrophe alone does not make it UCS-2.
    assert await segments("C\u2019est " + "a" * 150) == ("gsm7", 1)


async def test_a_template_with_values_is_rendered_and_priced(
    http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    response = await http.post(
        "/v1/estimates",
        json={
            "to": [FR, PL],
            "template": {
                "type": "booking.accepted",
                "role": "asker",
                "language": "fr-FR",
                "values": {"other_name": "Marc", "booking_title": "Canoë"},
            },
        },
        headers=auth,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["language"] == "fr"
    assert body["text"] == (
        "Bonne nouvelle : Marc a accepté votre demande de réservation pour Canoë"
        " le mar. 1 déc. 09:00."
    )
    # "ë" is not GSM-7: 90 UCS-2 units are two parts.
    assert [(r["encoding"], r["segments"], r["credits"]) for r in body["recipients"]] == [
        ("ucs2", 2, 2),
        ("ucs2", 2, 3),
    ]
    assert body["totals"]["cost"] == 0.25


async def test_template_values_up_to_the_length_limit_are_priced(
    http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    async def estimate(title: str) -> httpx.Response:
        template = {"type": "booking.accepted", "role": "asker", "values": {"booking_title": title}}
        return await http.post(
            "/v1/estimates", json={"to": [FR], "template": template}, headers=auth
        )

    at_limit = await estimate("x" * PLACEHOLDER_VALUE_MAX_LENGTH)
    assert at_limit.status_code == 200, at_limit.text
    body = at_limit.json()
    assert "x" * PLACEHOLDER_VALUE_MAX_LENGTH in body["text"]
    assert body["recipients"][0]["segments"] == -(-len(body["text"]) // 153)

    over = await estimate("x" * (PLACEHOLDER_VALUE_MAX_LENGTH + 1))
    assert over.status_code == 422
    assert over.headers["content-type"] == PROBLEM_JSON
    assert [e["field"] for e in over.json()["errors"]] == ["body.template.values.booking_title"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"to": [FR]}, "body"),  # neither text nor template
        (
            {"to": [FR], "text": "Hi", "template": {"type": "booking.accepted", "role": "asker"}},
            "body",
        ),
        ({"to": [], "text": "Hi"}, "body.to"),
        ({"to": [FR] * 1001, "text": "Hi"}, "body.to"),
        ({"to": [FR], "text": ""}, "body.text"),
        ({"to": [FR], "template": {"type": "booking.nope", "role": "asker"}}, "body.template.type"),
    ],
)
async def test_invalid_requests_are_422(
    http: httpx.AsyncClient, auth: dict[str, str], body: dict[str, object], field: str
) -> None:
    response = await http.post("/v1/estimates", json=body, headers=auth)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == field


async def test_template_problems_are_422(http: httpx.AsyncClient, auth: dict[str, str]) -> None:
    async def slug(template: dict[str, object]) -> str:
        response = await http.post(
            "/v1/estimates", json={"to": [FR], "template": template}, headers=auth
        )
        assert response.status_code == 422
        return str(response.json()["type"]).rsplit("/", 1)[1]

    assert await slug({"type": "booking.requested", "role": "asker"}) == "unknown-template"
    assert (
        await slug({"type": "booking.accepted", "role": "asker", "values": {"price": "1"}})
        == "invalid-template"
    )
    assert (
        await slug({"type": "booking.accepted", "role": "asker", "language": "??"})
        == "invalid-language"
    )


async def test_needs_an_api_key(http: httpx.AsyncClient) -> None:
    response = await http.post("/v1/estimates", json={"to": [FR], "text": "Hi"})
    assert response.status_code == 401
