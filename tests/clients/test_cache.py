"""The per-process cache of clients by key, on the hot path of every request.

A change made through this process applies at once; one made elsewhere (another
process, the CLI, here: straight in the database) within the cache's lifetime.
"""

from __future__ import annotations

from decimal import Decimal

import httpx

from smsgateway.clients.cache import ClientCache
from smsgateway.clients.service import disable_client
from smsgateway.credits.ledger import adjust
from smsgateway.runtime import Runtime
from tests.conftest import ADMIN_TOKEN, booking_event
from tests.factories import make_client
from tests.helpers import Clock

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


async def test_a_client_disabled_elsewhere_is_refused_once_its_cached_row_expires(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    clock = Clock()
    runtime.client_cache = ClientCache(2.0, clock=clock)
    shop = await make_client(runtime)
    assert (await http.get("/v1/messages", headers=shop.auth)).status_code == 200
    async with runtime.sessionmaker() as session, session.begin():
        await disable_client(session, shop.id)  # as the CLI would, from another process
    assert (await http.get("/v1/messages", headers=shop.auth)).status_code == 200
    clock.now += 2.0
    refused = await http.get("/v1/messages", headers=shop.auth)
    assert refused.status_code == 401, refused.text


async def test_a_client_disabled_through_this_process_is_refused_at_once(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    runtime.client_cache = ClientCache(3600.0)
    shop = await make_client(runtime)
    assert (await http.get("/v1/messages", headers=shop.auth)).status_code == 200
    assert (await http.delete(f"/v1/admin/clients/{shop.id}", headers=ADMIN)).status_code == 200
    assert (await http.get("/v1/messages", headers=shop.auth)).status_code == 401


async def test_a_rotated_key_stops_at_once_and_the_new_one_works(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    runtime.client_cache = ClientCache(3600.0)
    shop = await make_client(runtime)
    assert (await http.get("/v1/messages", headers=shop.auth)).status_code == 200
    rotated = await http.post(f"/v1/admin/clients/{shop.id}/rotate-key", headers=ADMIN)
    assert (await http.get("/v1/messages", headers=shop.auth)).status_code == 401
    new = {"Authorization": f"Bearer {rotated.json()['api_key']}"}
    assert (await http.get("/v1/messages", headers=new)).status_code == 200


async def test_the_account_shows_the_balance_of_now_not_of_the_cached_row(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    runtime.client_cache = ClientCache(3600.0)
    shop = await make_client(runtime, quota=10)
    assert (await http.get("/v1/account", headers=shop.auth)).json()["credits_left"] == 10
    async with runtime.sessionmaker() as session, session.begin():
        await adjust(session, shop.id, Decimal(5), kind="grant", reason="top-up")
    assert (await http.get("/v1/account", headers=shop.auth)).json()["credits_left"] == 15


async def test_credits_are_charged_from_the_database_not_the_cached_row(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    runtime.client_cache = ClientCache(3600.0)
    shop = await make_client(runtime, quota=1)
    first = await http.post("/v1/booking-events", json=booking_event(), headers=shop.auth)
    assert first.status_code == 202, first.text
    # One credit spent: the cached row still says 1 left, the database 0.
    second = await http.post(
        "/v1/booking-events", json=booking_event(event_id="evt-982"), headers=shop.auth
    )
    assert second.status_code == 402, second.text
    assert second.json()["credits_left"] == 0
