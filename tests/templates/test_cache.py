"""The per-process cache of stored templates, read for every message an event makes.

A template saved through this process applies at once; one saved elsewhere (another
process, here: straight in the database) once the cached copy expires.
"""

from __future__ import annotations

import httpx

from smsgateway.models.templates import StoredTemplate
from smsgateway.runtime import Runtime
from smsgateway.templates.cache import TemplateCache
from tests.conftest import ADMIN_TOKEN, booking_event
from tests.helpers import Clock

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


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
    http: httpx.AsyncClient, runtime: Runtime, auth: dict[str, str]
) -> None:
    runtime.template_cache = TemplateCache(3600.0)
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
    http: httpx.AsyncClient, runtime: Runtime, auth: dict[str, str]
) -> None:
    clock = Clock()
    runtime.template_cache = TemplateCache(2.0, clock=clock)
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
