"""ways around the hourly verification-SMS limit per number."""

from __future__ import annotations

import asyncio

import httpx

from smsgateway.runtime import Runtime
from tests.factories import make_client
from tests.phones.test_pumping import NUMBER, _put


async def test_erasing_the_number_does_not_reset_its_hourly_count(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    """POST /v1/erasures masks Message.to, which is what the per-number count reads:
    register, erase, register again pumps one (premium, attacker-owned) number up to
    the per-client cap instead of 3 an hour."""
    shop = await make_client(runtime, "shop")
    sent = 0
    for n in range(6):
        if await _put(http, shop.auth, f"u-{n}", NUMBER) == 201:
            sent += 1
        erased = await http.post("/v1/erasures", json={"phone": NUMBER}, headers=shop.auth)
        assert erased.status_code == 200, erased.text
    assert sent == runtime.settings.verification.per_number_per_hour


async def test_concurrent_registrations_of_one_number_do_not_pass_the_limit(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    """Count, then insert, with nothing to serialise them: run on PostgreSQL
    (SMSGW_TEST_DATABASE_URL), where concurrent requests really overlap."""
    clients = [await make_client(runtime, f"c{n}") for n in range(4)]
    answers = await asyncio.gather(
        *(_put(http, c.auth, f"u-{n}", NUMBER) for c in clients for n in range(3))
    )
    assert answers.count(201) <= runtime.settings.verification.per_number_per_hour, answers
