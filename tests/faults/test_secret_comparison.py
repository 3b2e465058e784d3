"""Secrets given by callers are compared in constant time, or not compared at all.

The callback token and the admin token go through ``hmac.compare_digest``; an API key
is hashed and looked up by its SHA-256, so no stored secret is compared byte by byte.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import httpx
import pytest

from smsgateway.clients import service as clients_service
from tests.conftest import ADMIN_TOKEN, CALLBACK_TOKEN


@pytest.fixture
def compared(monkeypatch: pytest.MonkeyPatch) -> list[tuple[bytes, bytes]]:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((bytes(a), bytes(b)))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    return calls


async def test_the_callback_token_is_compared_in_constant_time(
    http: httpx.AsyncClient, compared: list[tuple[bytes, bytes]]
) -> None:
    wrong = await http.get("/v1/providers/ovh/guess-token/dlr", params={"id": "1", "dlr": "1"})
    assert wrong.status_code == 404
    assert (b"guess-token", CALLBACK_TOKEN.encode()) in compared
    right = await http.get(
        f"/v1/providers/ovh/{CALLBACK_TOKEN}/dlr", params={"id": "1", "dlr": "1"}
    )
    assert right.status_code == 200
    assert (CALLBACK_TOKEN.encode(), CALLBACK_TOKEN.encode()) in compared


async def test_the_admin_token_is_compared_in_constant_time(
    http: httpx.AsyncClient, compared: list[tuple[bytes, bytes]]
) -> None:
    wrong = await http.get("/v1/admin/clients", headers={"Authorization": "Bearer guess"})
    assert wrong.status_code == 401
    assert (b"guess", ADMIN_TOKEN.encode()) in compared
    right = await http.get("/v1/admin/clients", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert right.status_code == 200


async def test_an_api_key_is_looked_up_by_its_hash(
    http: httpx.AsyncClient, api_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    hashed: list[str] = []
    real = clients_service.hash_key

    def spy(key: str) -> str:
        hashed.append(key)
        return real(key)

    monkeypatch.setattr(clients_service, "hash_key", spy)
    response = await http.get("/v1/account", headers={"Authorization": f"Bearer {api_key}"})
    assert response.status_code == 200, response.text
    assert hashed == [api_key]
    assert real(api_key) == hashlib.sha256(api_key.encode()).hexdigest()
