"""Input the database cannot store is the caller's mistake: a 422 problem, never a 500."""

from __future__ import annotations

import httpx

from tests.conftest import CALLBACK_TOKEN


async def test_nul_characters_are_refused_cleanly(
    http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    sent = await http.post(
        "/v1/messages", json={"to": "+33611223344", "text": "a\x00b"}, headers=auth
    )
    report = await http.get(
        f"/v1/providers/ovh/{CALLBACK_TOKEN}/dlr", params={"id": "x\x00", "dlr": "1"}
    )
    incoming = await http.post(
        f"/v1/providers/ovh/{CALLBACK_TOKEN}/incoming",
        data={"id": "9", "sender": "+33611223344", "message": "o\x00ui"},
    )
    # The same answer on SQLite and PostgreSQL: the value cannot be stored.
    for response in (sent, report, incoming):
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"
    assert CALLBACK_TOKEN not in report.text + incoming.text


async def test_non_geographic_numbers_are_refused_on_every_database(
    http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    """+882 (international networks) has no country: once stored on SQLite, refused on PG."""
    response = await http.post(
        "/v1/messages", json={"to": "+8823421234", "text": "Hello"}, headers=auth
    )
    assert response.status_code == 202, response.text
    assert (response.json()["status"], response.json()["reason"]) == ("rejected", "invalid_phone")
