"""The admin clients API: keys shown once, rotation, credits, quotas, disabling, validation."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from smsgateway.clients.service import hash_key
from smsgateway.credits.ledger import ledger_sum
from smsgateway.models.clients import ApiClient, CreditEntry
from smsgateway.models.webhooks import WebhookDelivery
from smsgateway.runtime import Runtime
from tests.conftest import ADMIN_TOKEN, booking_event
from tests.helpers import bearer

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
CLIENTS = "/v1/admin/clients"


async def _create(http: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    response = await http.post(CLIENTS, json={"name": "shop", **fields}, headers=ADMIN)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def _send(http: httpx.AsyncClient, api_key: str, **fields: Any) -> httpx.Response:
    body = {"to": "+33611223344", "text": "Hello", **fields}
    return await http.post("/v1/messages", json=body, headers=bearer(api_key))


async def _book(http: httpx.AsyncClient, api_key: str) -> httpx.Response:
    """One booking event: one SMS to the offeror, one credit reserved."""
    event = booking_event(event_id=f"evt-{uuid.uuid4()}")
    return await http.post("/v1/booking-events", json=event, headers=bearer(api_key))


async def _stored(runtime: Runtime, client_id: str) -> tuple[ApiClient, Decimal]:
    async with runtime.sessionmaker() as session:
        client = await session.get(ApiClient, client_id)
        assert client is not None
        return client, await ledger_sum(session, client_id)


async def _quota_low_count(runtime: Runtime) -> int:
    async with runtime.sessionmaker() as session:
        query = select(func.count()).where(WebhookDelivery.event_type == "quota.low")
        return int(await session.scalar(query) or 0)


async def test_create_shows_the_key_once_and_stores_only_its_hash(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    created = await _create(
        http,
        quota=100,
        alert_threshold=10,
        allowed_ips=["203.0.113.7", "198.51.100.0/24"],
        webhook_url="https://shop.test/hooks",
        rate_limit_per_second=5,
    )
    api_key = created["api_key"]
    assert api_key.startswith("sgw_")
    assert created["key_prefix"] == api_key[:10]
    assert len(created["webhook_secret"]) == 64
    assert created["quota"] == 100 and created["credits_left"] == 100
    assert created["alert_threshold"] == 10
    assert created["allowed_ips"] == ["203.0.113.7", "198.51.100.0/24"]
    assert created["webhook_url"] == "https://shop.test/hooks"
    assert created["rate_limit_per_second"] == 5
    assert created["disabled_at"] is None

    client, ledger = await _stored(runtime, created["id"])
    assert client.key_hash == hash_key(api_key)
    stored = {str(getattr(client, c.key)) for c in ApiClient.__table__.columns}
    assert api_key not in stored
    assert ledger == Decimal(100)

    shown = (await http.get(f"{CLIENTS}/{created['id']}", headers=ADMIN)).json()
    listed = (await http.get(CLIENTS, headers=ADMIN)).json()["items"]
    for answer in (shown, *listed):
        assert "api_key" not in answer and "webhook_secret" not in answer
        assert api_key not in str(answer)
    assert shown["credits_left"] == 100
    assert [c["name"] for c in listed] == ["shop"]
    # The key works (the test client calls from no address, so no allowlist here).
    await http.patch(f"{CLIENTS}/{created['id']}", json={"allowed_ips": []}, headers=ADMIN)
    assert (await http.get("/v1/messages", headers=bearer(api_key))).status_code == 200


async def test_unlimited_by_default(http: httpx.AsyncClient) -> None:
    created = await _create(http)
    assert created["quota"] is None and created["credits_left"] is None
    assert created["allowed_ips"] == [] and created["rate_limit_per_second"] is None


async def test_rotate_key_stops_the_old_one(http: httpx.AsyncClient) -> None:
    created = await _create(http)
    old = created["api_key"]
    assert (await http.get("/v1/messages", headers=bearer(old))).status_code == 200
    rotated = await http.post(f"{CLIENTS}/{created['id']}/rotate-key", headers=ADMIN)
    assert rotated.status_code == 200
    new = rotated.json()["api_key"]
    assert new != old and rotated.json()["key_prefix"] == new[:10]
    assert (await http.get("/v1/messages", headers=bearer(old))).status_code == 401
    assert (await http.get("/v1/messages", headers=bearer(new))).status_code == 200


async def test_rotate_webhook_secret(http: httpx.AsyncClient, runtime: Runtime) -> None:
    created = await _create(http)
    rotated = await http.post(f"{CLIENTS}/{created['id']}/rotate-webhook-secret", headers=ADMIN)
    secret = rotated.json()["webhook_secret"]
    assert secret != created["webhook_secret"]
    client, _ = await _stored(runtime, created["id"])
    assert client.webhook_secret == secret


async def test_credits_added_and_removed_with_a_reason(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    created = await _create(http, quota=10)
    url = f"{CLIENTS}/{created['id']}/credits"
    added = await http.post(
        url, json={"delta": 5, "reason": "top-up #42"}, headers={**ADMIN, "X-Actor": "alice"}
    )
    assert added.status_code == 200
    assert added.json()["credits_left"] == 15 and added.json()["quota"] == 15
    removed = await http.post(url, json={"delta": -2.5, "reason": "goodwill"}, headers=ADMIN)
    assert removed.json()["credits_left"] == 12.5

    too_much = await http.post(url, json={"delta": -13, "reason": "oops"}, headers=ADMIN)
    assert too_much.status_code == 409
    assert too_much.headers["content-type"] == "application/problem+json"
    assert "12.5 are left" in too_much.json()["detail"]

    client, ledger = await _stored(runtime, created["id"])
    assert client.balance == ledger == Decimal("12.5")
    rows = (await http.get(f"{CLIENTS}/{created['id']}/ledger", headers=ADMIN)).json()["items"]
    assert [(r["kind"], r["delta"], r["reason"], r["actor"]) for r in rows] == [
        ("adjust", -2.5, "goodwill", "admin"),
        ("adjust", 5, "top-up #42", "alice"),
        ("grant", 10, "opening quota", "admin"),
    ]
    assert rows[0]["balance_after"] == 12.5


async def test_ledger_pages(http: httpx.AsyncClient) -> None:
    created = await _create(http, quota=10)
    for i in range(3):
        await http.post(
            f"{CLIENTS}/{created['id']}/credits",
            json={"delta": 1, "reason": f"r{i}"},
            headers=ADMIN,
        )
    url = f"{CLIENTS}/{created['id']}/ledger"
    first = (await http.get(url, params={"limit": 3}, headers=ADMIN)).json()
    assert [r["reason"] for r in first["items"]] == ["r2", "r1", "r0"]
    rest = (await http.get(url, params={"cursor": first["next_cursor"]}, headers=ADMIN)).json()
    assert [r["reason"] for r in rest["items"]] == ["opening quota"]
    assert rest["next_cursor"] is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"delta": 0, "reason": "nothing"}, "body.delta"),
        ({"delta": 5}, "body.reason"),
        ({"delta": 5, "reason": "  "}, "body.reason"),
        ({"delta": 5, "reason": "x" * 256}, "body.reason"),
        ({"delta": 0.00001, "reason": "too precise"}, "body.delta"),
    ],
)
async def test_bad_credit_changes_are_422(
    http: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    created = await _create(http, quota=10)
    response = await http.post(f"{CLIENTS}/{created['id']}/credits", json=body, headers=ADMIN)
    assert response.status_code == 422
    assert field in [e["field"] for e in response.json()["errors"]]


async def test_credits_of_an_unlimited_client_is_409(http: httpx.AsyncClient) -> None:
    created = await _create(http)
    response = await http.post(
        f"{CLIENTS}/{created['id']}/credits", json={"delta": 5, "reason": "x"}, headers=ADMIN
    )
    assert response.status_code == 409
    assert response.json()["type"].endswith("/client-unlimited")


async def test_patch_changes_only_what_is_given(http: httpx.AsyncClient) -> None:
    created = await _create(http, quota=10, webhook_url="https://shop.test/a")
    response = await http.patch(
        f"{CLIENTS}/{created['id']}",
        json={
            "name": "shop-eu",
            "allowed_ips": ["2001:db8::/32", "2001:DB8::1", "2001:db8::1"],
            "rate_limit_per_second": 2.5,
            "alert_threshold": 3,
        },
        headers=ADMIN,
    )
    assert response.status_code == 200, response.text
    patched = response.json()
    assert patched["name"] == "shop-eu"
    assert patched["allowed_ips"] == ["2001:db8::/32", "2001:db8::1"]  # canonical, once each
    assert patched["rate_limit_per_second"] == 2.5
    assert patched["alert_threshold"] == 3
    assert patched["webhook_url"] == "https://shop.test/a"  # untouched
    assert patched["quota"] == 10 and patched["credits_left"] == 10
    cleared = await http.patch(
        f"{CLIENTS}/{created['id']}",
        json={"webhook_url": None, "allowed_ips": None, "rate_limit_per_second": None},
        headers=ADMIN,
    )
    body = cleared.json()
    assert body["webhook_url"] is None and body["allowed_ips"] == []
    assert body["rate_limit_per_second"] is None
    assert body["name"] == "shop-eu"


async def test_patch_quota_moves_the_balance_and_keeps_the_ledger_exact(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    created = await _create(http, quota=10)
    client_id, url = created["id"], f"{CLIENTS}/{created['id']}"
    for _ in range(3):
        assert (await _book(http, created["api_key"])).status_code == 202
    raised = (await http.patch(url, json={"quota": 20}, headers=ADMIN)).json()
    assert (raised["quota"], raised["credits_left"]) == (20, 17)
    lowered = (await http.patch(url, json={"quota": 4}, headers=ADMIN)).json()
    assert (lowered["quota"], lowered["credits_left"]) == (4, 1)
    client, ledger = await _stored(runtime, client_id)
    assert client.balance == ledger == Decimal(1)

    # Lower than what was already used: the balance would go negative.
    refused = await http.patch(url, json={"quota": 2}, headers=ADMIN)
    assert refused.status_code == 409
    assert (await http.get(url, headers=ADMIN)).json()["quota"] == 4

    unlimited = (await http.patch(url, json={"quota": None}, headers=ADMIN)).json()
    assert unlimited["quota"] is None and unlimited["credits_left"] is None
    assert (await _book(http, created["api_key"])).status_code == 202
    client, ledger = await _stored(runtime, client_id)
    assert (client.balance, ledger) == (None, Decimal(0))

    limited = (await http.patch(url, json={"quota": 5}, headers=ADMIN)).json()
    assert (limited["quota"], limited["credits_left"]) == (5, 5)
    client, ledger = await _stored(runtime, client_id)
    assert client.balance == ledger == Decimal(5)
    kinds = [r["kind"] for r in (await http.get(f"{url}/ledger", headers=ADMIN)).json()["items"]]
    assert kinds[:3] == ["grant", "adjust", "adjust"]


async def test_alert_threshold_changes_keep_one_alert_per_crossing(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    created = await _create(http, quota=10, alert_threshold=2, webhook_url="https://shop.test/h")
    url = f"{CLIENTS}/{created['id']}"
    # Raising the threshold above the balance is a crossing: one alert, then no more.
    above = (await http.patch(url, json={"alert_threshold": 15}, headers=ADMIN)).json()
    assert above["low_credit_alerted"] is True
    await http.patch(url, json={"alert_threshold": 12}, headers=ADMIN)
    await _book(http, created["api_key"])
    assert await _quota_low_count(runtime) == 1
    # Lowering it under the balance re-arms it; removing credits below it alerts again.
    below = (await http.patch(url, json={"alert_threshold": 5}, headers=ADMIN)).json()
    assert below["low_credit_alerted"] is False
    assert await _quota_low_count(runtime) == 1
    removed = await http.post(
        f"{url}/credits", json={"delta": -6, "reason": "move to shop-b"}, headers=ADMIN
    )
    assert removed.json()["credits_left"] == 3 and removed.json()["low_credit_alerted"] is True
    assert await _quota_low_count(runtime) == 2
    # No threshold: nothing to alert about.
    cleared = (await http.patch(url, json={"alert_threshold": None}, headers=ADMIN)).json()
    assert cleared["low_credit_alerted"] is False


async def test_disable_refuses_the_key_but_keeps_messages_readable(
    http: httpx.AsyncClient,
) -> None:
    created = await _create(http, quota=10)
    sent = await _send(http, created["api_key"], tag="promo")
    assert sent.status_code == 202
    disabled = await http.delete(f"{CLIENTS}/{created['id']}", headers=ADMIN)
    assert disabled.status_code == 200
    assert disabled.json()["disabled_at"] is not None
    assert (await http.get("/v1/messages", headers=bearer(created["api_key"]))).status_code == 401
    again = await http.delete(f"{CLIENTS}/{created['id']}", headers=ADMIN)
    assert again.json()["disabled_at"] == disabled.json()["disabled_at"]

    messages = await http.get(f"{CLIENTS}/{created['id']}/messages", headers=ADMIN)
    assert messages.status_code == 200
    assert [m["id"] for m in messages.json()["items"]] == [sent.json()["id"]]
    tagged = await http.get(
        f"{CLIENTS}/{created['id']}/messages", params={"tag": "other"}, headers=ADMIN
    )
    assert tagged.json()["items"] == []
    listed = (await http.get(CLIENTS, headers=ADMIN)).json()["items"]
    assert listed[0]["disabled_at"] is not None


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("GET", "", None),
        ("PATCH", "", {"name": "x"}),
        ("DELETE", "", None),
        ("POST", "/rotate-key", None),
        ("POST", "/rotate-webhook-secret", None),
        ("POST", "/credits", {"delta": 1, "reason": "x"}),
        ("GET", "/ledger", None),
        ("GET", "/messages", None),
    ],
)
async def test_unknown_client_is_404(
    http: httpx.AsyncClient, method: str, suffix: str, body: dict[str, Any] | None
) -> None:
    response = await http.request(method, f"{CLIENTS}/nope{suffix}", json=body, headers=ADMIN)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"].endswith("/client-not-found")


async def test_duplicate_name_is_409(http: httpx.AsyncClient) -> None:
    await _create(http)
    again = await http.post(CLIENTS, json={"name": "shop"}, headers=ADMIN)
    assert again.status_code == 409
    assert again.json()["type"].endswith("/client-name-taken")
    other = await _create(http, name="other")
    renamed = await http.patch(f"{CLIENTS}/{other['id']}", json={"name": "shop"}, headers=ADMIN)
    assert renamed.status_code == 409
    same = await http.patch(f"{CLIENTS}/{other['id']}", json={"name": "other"}, headers=ADMIN)
    assert same.status_code == 200


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"allowed_ips": [f"203.0.113.{i}" for i in range(6)]}, "body.allowed_ips", "at most 5"),
        ({"allowed_ips": ["203.0.113.0/33"]}, "body.allowed_ips.0", "not a valid CIDR"),
        ({"allowed_ips": ["1.2.3.4", "10.0.0.1/24"]}, "body.allowed_ips.1", "host bits"),
        ({"allowed_ips": ["example.com"]}, "body.allowed_ips.0", "not an IPv4 or IPv6"),
        ({"quota": -1}, "body.quota", "greater than or equal to 0"),
        ({"alert_threshold": -5}, "body.alert_threshold", "greater than or equal to 0"),
        ({"webhook_url": "ftp://shop.test/x"}, "body.webhook_url", "URL scheme"),
        ({"rate_limit_per_second": 0}, "body.rate_limit_per_second", "greater than 0"),
        ({"name": ""}, "body.name", "at least 1"),
        ({"colour": "blue"}, "body.colour", "Extra inputs"),
    ],
)
async def test_bad_input_is_a_422_naming_the_field(
    http: httpx.AsyncClient, fields: dict[str, Any], field: str, words: str
) -> None:
    response = await http.post(CLIENTS, json={"name": "shop", **fields}, headers=ADMIN)
    assert response.status_code == 422
    problem = response.json()
    assert response.headers["content-type"] == "application/problem+json"
    errors = {e["field"]: e["message"] for e in problem["errors"]}
    assert field in errors, errors
    assert words in errors[field]
    # PATCH validates the same way.
    created = await _create(http, name="valid")
    patched = await http.patch(f"{CLIENTS}/{created['id']}", json=fields, headers=ADMIN)
    assert patched.status_code == 422


async def test_patch_refuses_a_null_name(http: httpx.AsyncClient) -> None:
    created = await _create(http)
    response = await http.patch(f"{CLIENTS}/{created['id']}", json={"name": None}, headers=ADMIN)
    assert response.status_code == 422


async def test_admin_routes_need_the_admin_token(http: httpx.AsyncClient) -> None:
    created = await _create(http)
    for headers in ({}, bearer(created["api_key"]), {"Authorization": "Bearer wrong"}):
        assert (await http.get(CLIENTS, headers=headers)).status_code == 401
        response = await http.post(CLIENTS, json={"name": "x"}, headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"


async def test_ledger_rows_of_a_create_carry_the_actor(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    response = await http.post(
        CLIENTS, json={"name": "shop", "quota": 3}, headers={**ADMIN, "X-Actor": "bob"}
    )
    async with runtime.sessionmaker() as session:
        entry = await session.scalar(
            select(CreditEntry).where(CreditEntry.client_id == response.json()["id"])
        )
    assert entry is not None and entry.actor == "bob" and entry.kind == "grant"
