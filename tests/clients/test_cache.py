"""The per-process caches on the hot path: clients by key, stored templates.

A change made through this process applies at once; one made elsewhere (another
process, the CLI, here: straight in the database) within the cache's lifetime.
"""

from __future__ import annotations

from decimal import Decimal

import httpx

from smsgateway.clients.cache import ClientCache
from smsgateway.clients.credits import adjust
from smsgateway.clients.service import create_client, disable_client
from smsgateway.models.templates import StoredTemplate
from smsgateway.runtime import Runtime
from smsgateway.templates.cache import TemplateCache
from tests.conftest import ADMIN_TOKEN, booking_event

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _client(runtime: Runtime, quota: str | None = None) -> tuple[str, dict[str, str]]:
    async with runtime.sessionmaker() as session, session.begin():
        created = await create_client(session, name="shop", quota=Decimal(quota) if quota else None)
    return created.client.id, {"Authorization": f"Bearer {created.api_key}"}


async def test_a_client_disabled_elsewhere_is_refused_once_its_cached_row_expires(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    clock = Clock()
    runtime.client_cache = ClientCache(2.0, clock=clock)
    client_id, auth = await _client(runtime)
    assert (await http.get("/v1/messages", headers=auth)).status_code == 200
    async with runtime.sessionmaker() as session, session.begin():
        await disable_client(session, client_id)  # as the CLI would, from another process
    assert (await http.get("/v1/messages", headers=auth)).status_code == 200
    clock.now += 2.0
    refused = await http.get("/v1/messages", headers=auth)
    assert refused.status_code == 401, refused.text


async def test_a_client_disabled_through_this_process_is_refused_at_once(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    runtime.client_cache = ClientCache(3600.0)
    client_id, auth = await _client(runtime)
    assert (await http.get("/v1/messages", headers=auth)).status_code == 200
    assert (await http.delete(f"/v1/admin/clients/{client_id}", headers=ADMIN)).status_code == 200
    assert (await http.get("/v1/messages", headers=auth)).status_code == 401


async def test_a_rotated_key_stops_at_once_and_the_new_one_works(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    runtime.client_cache = ClientCache(3600.0)
    client_id, auth = await _client(runtime)
    assert (await http.get("/v1/messages", headers=auth)).status_code == 200
    rotated = await http.post(f"/v1/admin/clients/{client_id}/rotate-key", headers=ADMIN)
    assert (await http.get("/v1/messages", headers=auth)).status_code == 401
    new = {"Authorization": f"Bearer {rotated.json()['api_key']}"}
    assert (await http.get("/v1/messages", headers=new)).status_code == 200


async def test_the_account_shows_the_balance_of_now_not_of_the_cached_row(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    runtime.client_cache = ClientCache(3600.0)
    client_id, auth = await _client(runtime, quota="10")
    assert (await http.get("/v1/account", headers=auth)).json()["credits_left"] == 10
    async with runtime.sessionmaker() as session, session.begin():
        await adjust(session, client_id, Decimal(5), kind="grant", reason="top-up")
    assert (await http.get("/v1/account", headers=auth)).json()["credits_left"] == 15


async def test_credits_are_charged_from_the_database_not_the_cached_row(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    runtime.client_cache = ClientCache(3600.0)
    _, auth = await _client(runtime, quota="1")
    first = await http.post("/v1/booking-events", json=booking_event(), headers=auth)
    assert first.status_code == 202, first.text
    # One credit spent: the cached row still says 1 left, the database 0.
    second = await http.post(
        "/v1/booking-events", json=booking_event(event_id="evt-982"), headers=auth
    )
    assert second.status_code == 402, second.text
    assert second.json()["credits_left"] == 0


async def _offeror_text(http: httpx.AsyncClient, auth: dict[str, str], event_id: str) -> str:
    answer = await http.post(
        "/v1/booking-events", json=booking_event(event_id=event_id), headers=auth
    )
    assert answer.status_code == 202, answer.text
    offeror = next(m for m in answer.json()["messages"] if m["role"] == "offeror")
    message = await http.get(f"/v1/messages/{offeror['id']}", headers=auth)
    text: str = message.json()["text"]
    return text


async def test_a_template_saved_here_applies_to_the_next_event(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    runtime.template_cache = TemplateCache(3600.0)
    _, auth = await _client(runtime)
    before = await _offeror_text(http, auth, "evt-1")  # the default, now cached
    saved = await http.put(
        "/v1/templates/booking.requested/offeror/en",
        json={"text": "New request: {booking_title}. Reply {reply_yes} or {reply_no}."},
        headers=ADMIN,
    )
    assert saved.status_code == 200, saved.text
    after = await _offeror_text(http, auth, "evt-2")
    assert after != before
    assert after.startswith("New request: Kayak for two.")


async def test_a_template_saved_elsewhere_applies_once_the_cached_copy_expires(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    clock = Clock()
    runtime.template_cache = TemplateCache(2.0, clock=clock)
    _, auth = await _client(runtime)
    before = await _offeror_text(http, auth, "evt-1")
    async with runtime.sessionmaker() as session, session.begin():
        session.add(
            StoredTemplate(
                event_type="booking.requested",
                role="offeror",
                language="en",
                text="Elsewhere: {booking_title}. {reply_yes}/{reply_no}",
                updated_by="another-process",
            )
        )
    assert await _offeror_text(http, auth, "evt-2") == before
    clock.now += 2.0
    assert (await _offeror_text(http, auth, "evt-3")).startswith("Elsewhere: Kayak for two.")
