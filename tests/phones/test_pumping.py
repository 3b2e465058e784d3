"""Verification SMS: at most a few an hour per number (every user_ref and client
together) and a cap per client; past either a 429, and nothing is stored or sent."""

from __future__ import annotations

import httpx
from sqlalchemy import func, select

from smsgateway.models.messages import Message
from smsgateway.models.phones import UserPhone
from smsgateway.runtime import Runtime
from tests.factories import make_client

NUMBER = "+33612340001"


async def _put(http: httpx.AsyncClient, auth: dict[str, str], user_ref: str, phone: str) -> int:
    response = await http.put(
        f"/v1/users/{user_ref}/phone", json={"phone": phone, "method": "code"}, headers=auth
    )
    if response.status_code == 429:
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["type"].endswith("/verification-limit")
        assert 1 <= int(response.headers["retry-after"]) <= 3600
    return response.status_code


async def _counts(runtime: Runtime) -> tuple[int, int]:
    async with runtime.sessionmaker() as session:
        messages = await session.scalar(select(func.count()).select_from(Message))
        phones = await session.scalar(select(func.count()).select_from(UserPhone))
    return int(messages or 0), int(phones or 0)


async def test_one_number_under_many_user_refs_and_clients_gets_three_an_hour(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    first, second = await make_client(runtime, "first"), await make_client(runtime, "second")
    assert [await _put(http, first.auth, f"u-{n}", NUMBER) for n in range(2)] == [201, 201]
    assert await _put(http, second.auth, "u-x", NUMBER) == 201
    assert await _put(http, first.auth, "u-9", NUMBER) == 429
    assert await _put(http, second.auth, "u-y", NUMBER) == 429
    assert await _counts(runtime) == (3, 3)  # the refused ones left nothing behind


async def test_delete_and_put_again_does_not_reset_the_count(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    shop = await make_client(runtime, "shop")
    for _ in range(3):
        assert await _put(http, shop.auth, "u-1", NUMBER) == 201
        deleted = await http.delete("/v1/users/u-1/phone", headers=shop.auth)
        assert deleted.status_code == 204, deleted.text
    assert await _put(http, shop.auth, "u-1", NUMBER) == 429


async def test_a_client_has_its_own_hourly_cap(http: httpx.AsyncClient, runtime: Runtime) -> None:
    runtime.settings.verification.per_client_per_hour = 2
    shop, other = await make_client(runtime, "shop"), await make_client(runtime, "other")
    numbers = [f"+3361234010{n}" for n in range(3)]
    assert [await _put(http, shop.auth, f"u-{n}", p) for n, p in enumerate(numbers)] == [
        201,
        201,
        429,
    ]
    assert await _put(http, other.auth, "u-1", numbers[2]) == 201  # another client's cap
