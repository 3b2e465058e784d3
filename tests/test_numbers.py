"""Numbers no SMS should go to: premium rate (toll fraud) and those that cannot get one.

Refused on every send path: direct sends, booking events, campaigns, estimates
and registration, unless SMSGW_ALLOW_NUMBER_TYPES lets that type through.
"""

from __future__ import annotations

import httpx
import pytest

from smsgateway.numbers import InvalidNumber, sendable
from smsgateway.runtime import Runtime
from tests.conftest import ADMIN_TOKEN, booking_event

PREMIUM = ["+33891123456", "+33884012345", "+33806123456", "+449012345678"]
NOT_MOBILE = ["+33123456789", "+33801234567", "+441212345678", "+447640123456"]
MOBILE = ["+33612345678", "+447400123456"]


@pytest.mark.parametrize("number", PREMIUM)
def test_premium_numbers_are_refused(number: str) -> None:
    with pytest.raises(InvalidNumber) as refused:
        sendable(number, None, frozenset())
    assert refused.value.reason == "premium_rate"


@pytest.mark.parametrize("number", NOT_MOBILE)
def test_numbers_that_cannot_get_an_sms_are_refused(number: str) -> None:
    with pytest.raises(InvalidNumber) as refused:
        sendable(number, None, frozenset())
    assert refused.value.reason == "not_mobile"


@pytest.mark.parametrize("number", MOBILE)
def test_mobiles_go(number: str) -> None:
    assert sendable(number, None, frozenset()).e164 == number


def test_a_type_can_be_allowed() -> None:
    assert sendable("+33123456789", None, frozenset({"fixed_line"})).kind == "fixed_line"
    with pytest.raises(InvalidNumber):
        sendable("+33891123456", None, frozenset({"fixed_line"}))


async def test_every_send_path_refuses_them(
    http: httpx.AsyncClient, auth: dict[str, str], runtime: Runtime
) -> None:
    premium, landline = PREMIUM[0], NOT_MOBILE[0]
    direct = await http.post("/v1/messages", json={"to": premium, "text": "Hi"}, headers=auth)
    assert direct.status_code == 202, direct.text
    assert (direct.json()["status"], direct.json()["reason"]) == ("rejected", "premium_rate")

    event = booking_event()
    event["offeror"]["phone"] = landline
    accepted = await http.post("/v1/booking-events", json=event, headers=auth)
    assert accepted.status_code == 202, accepted.text
    reasons = {m["reason"] for m in accepted.json()["messages"] if m["status"] == "rejected"}
    assert reasons == {"not_mobile"}

    csv = f"number\n{premium}\n{landline}\n{MOBILE[0]}\n"
    dry = await http.post(
        "/v1/campaigns",
        json={"name": "S", "text": "Sale", "csv": csv, "dry_run": True},
        headers=auth,
    )
    assert dry.status_code == 200, dry.text
    summary = dry.json()["summary"]
    assert summary["recipients"] == 1
    assert sorted(r["reason"] for r in summary["invalid_rows"]) == ["not_mobile", "premium_rate"]

    estimate = await http.post(
        "/v1/estimates", json={"to": [premium, MOBILE[0]], "text": "Hi"}, headers=auth
    )
    assert estimate.status_code == 200, estimate.text
    assert [i["reason"] for i in estimate.json()["invalid"]] == ["premium_rate"]

    registered = await http.put(
        "/v1/users/u-9/phone", json={"phone": premium, "method": "code"}, headers=auth
    )
    assert registered.status_code == 422, registered.text
    assert registered.json()["type"].endswith("/premium-rate")


async def test_the_setting_lets_a_type_through(
    http: httpx.AsyncClient, auth: dict[str, str], runtime: Runtime
) -> None:
    runtime.settings.locale.allow_number_types = ["fixed_line"]
    sent = await http.post("/v1/messages", json={"to": NOT_MOBILE[0], "text": "Hi"}, headers=auth)
    assert sent.json()["status"] == "queued", sent.text


@pytest.mark.parametrize("number", ["+447012345678", "+447000123456"])
def test_uk_personal_numbers_are_refused(number: str) -> None:
    # UK 070 "personal numbers" forward anywhere and are billed at premium rates:
    # Ofcom's textbook toll-fraud range. phonenumbers types them PERSONAL_NUMBER,
    # which is in neither PREMIUM_TYPES nor NOT_MOBILE_TYPES.
    with pytest.raises(InvalidNumber) as refused:
        sendable(number, None, frozenset())
    assert refused.value.reason in ("premium_rate", "not_mobile")


async def test_a_client_texts_only_its_allowed_countries(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    created = await http.post(
        "/v1/admin/clients",
        json={"name": "french-only", "allowed_countries": ["FR"]},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    assert created.status_code == 201, created.text
    assert created.json()["allowed_countries"] == ["FR"]
    auth = {"Authorization": f"Bearer {created.json()['api_key']}"}
    uk, fr = MOBILE[1], MOBILE[0]
    refused = await http.post("/v1/messages", json={"to": uk, "text": "Hi"}, headers=auth)
    assert (refused.json()["status"], refused.json()["reason"]) == (
        "rejected",
        "country_not_allowed",
    )
    sent = await http.post("/v1/messages", json={"to": fr, "text": "Hi"}, headers=auth)
    assert sent.json()["status"] == "queued", sent.text

    event = booking_event()
    event["offeror"]["phone"] = uk
    accepted = await http.post("/v1/booking-events", json=event, headers=auth)
    reasons = {m["reason"] for m in accepted.json()["messages"] if m["status"] == "rejected"}
    assert reasons == {"country_not_allowed"}

    csv = f"number\n{uk}\n{fr}\n"
    dry = await http.post(
        "/v1/campaigns",
        json={"name": "S", "text": "Sale", "csv": csv, "dry_run": True},
        headers=auth,
    )
    summary = dry.json()["summary"]
    assert (summary["recipients"], summary["skipped"]["country_not_allowed"]) == (1, 1)

    registered = await http.put(
        "/v1/users/u-7/phone", json={"phone": uk, "method": "code"}, headers=auth
    )
    assert registered.status_code == 422, registered.text
    assert registered.json()["type"].endswith("/country-not-allowed")


async def test_the_server_default_applies_to_clients_without_a_list(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    runtime.settings.api.default_allowed_countries = ["GB"]
    created = await http.post(
        "/v1/admin/clients",
        json={"name": "default-list"},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    assert created.json()["allowed_countries"] is None
    auth = {"Authorization": f"Bearer {created.json()['api_key']}"}
    refused = await http.post("/v1/messages", json={"to": MOBILE[0], "text": "Hi"}, headers=auth)
    assert refused.json()["reason"] == "country_not_allowed"
    everywhere = await http.patch(
        f"/v1/admin/clients/{created.json()['id']}",
        json={"allowed_countries": []},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    assert everywhere.status_code == 200, everywhere.text
    runtime.client_cache.clear()
    sent = await http.post("/v1/messages", json={"to": MOBILE[0], "text": "Hi"}, headers=auth)
    assert sent.json()["status"] == "queued", sent.text
