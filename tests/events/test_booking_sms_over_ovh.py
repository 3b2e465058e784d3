"""Each of the nine booking messages, as the exact signed request OVHcloud receives."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator

import httpx
import pytest
import respx

from smsgateway.app import create_app
from smsgateway.config import Settings
from smsgateway.messages.dispatcher import Dispatcher
from smsgateway.providers.ovh import build_ovh_provider
from smsgateway.runtime import Runtime, build_runtime
from tests.conftest import _empty_tables, booking_event
from tests.factories import make_client

BASE = "https://eu.api.ovh.com/1.0"
APP_KEY, APP_SECRET, CONSUMER = "app-key", "app-secret-value", "consumer-key"
SERVICE = "sms-ab12345-1"
OVH_TIME = 1_790_000_000

# The DESIGN example: Anna (asker) reads French, Marc (offeror) English.
NINE_MESSAGES = {
    ("booking.requested", "offeror"): (
        "Booking request from Anna: Kayak for two on Tue, Dec 1, 9:00 AM. "
        "Reply YES to accept or NO to refuse."
    ),
    ("booking.expiring_soon", "offeror"): (
        "Anna is waiting for your answer: Kayak for two on Tue, Dec 1, 9:00 AM. "
        "Request expires Sun, Nov 22, 9:00 AM."
    ),
    ("booking.accepted", "asker"): (
        "Bonne nouvelle : Marc a accepté votre demande de réservation pour Kayak for two "
        "le mar. 1 déc. 09:00."
    ),
    ("booking.refused", "asker"): (
        "Votre demande de réservation pour Kayak for two le mar. 1 déc. 09:00 a été refusée."
    ),
    ("booking.expired", "asker"): (
        "Votre demande de réservation pour Kayak for two le mar. 1 déc. 09:00 a expiré : "
        "Marc n'a pas répondu à temps."
    ),
    ("booking.expired", "offeror"): (
        "The booking request from Anna for Kayak for two on Tue, Dec 1, 9:00 AM has expired "
        "without an answer."
    ),
    ("booking.starting_soon", "asker"): (
        "Rappel : votre réservation pour Kayak for two avec Marc commence le mar. 1 déc. 09:00."
    ),
    ("booking.starting_soon", "offeror"): (
        "Reminder: Kayak for two booked by Anna starts Tue, Dec 1, 9:00 AM."
    ),
    ("booking.cancelled", "offeror"): (
        "Anna cancelled the booking for Kayak for two on Tue, Dec 1, 9:00 AM."
    ),
}
PHONES = {"asker": "+33601020304", "offeror": "+33611223344"}


@pytest.fixture
async def ovh_runtime(settings: Settings) -> AsyncIterator[Runtime]:
    provider = build_ovh_provider(BASE, APP_KEY, APP_SECRET, CONSUMER, SERVICE, sender=None)
    runtime = build_runtime(
        settings.model_copy(
            update={"provider": settings.provider.model_copy(update={"name": "ovh"})}
        ),
        provider=provider,
    )
    try:
        yield runtime
    finally:
        await _empty_tables(runtime)
        await runtime.aclose()


def _expected_signature(request: httpx.Request) -> str:
    timestamp = request.headers["X-Ovh-Timestamp"]
    payload = "+".join(
        [
            APP_SECRET,
            CONSUMER,
            request.method,
            str(request.url),
            request.content.decode(),
            timestamp,
        ]
    )
    return "$1$" + hashlib.sha1(payload.encode()).hexdigest()  # noqa: S324 - OVHcloud's scheme


@pytest.mark.parametrize("event_type", sorted({t for t, _ in NINE_MESSAGES}))
async def test_each_booking_message_is_sent_as_a_signed_ovh_job(
    ovh_runtime: Runtime, event_type: str
) -> None:
    key = (await make_client(ovh_runtime, "marketplace")).api_key
    app = create_app(runtime=ovh_runtime)
    with respx.mock(assert_all_called=True) as ovh:
        ovh.get(f"{BASE}/auth/time").respond(200, json=OVH_TIME)
        jobs = ovh.post(f"{BASE}/sms/{SERVICE}/jobs").mock(
            side_effect=lambda request: httpx.Response(
                200,
                json={
                    "ids": [1000 + len(jobs.calls)],
                    "validReceivers": json.loads(request.content)["receivers"],
                    "invalidReceivers": [],
                    "totalCreditsRemoved": 1,
                },
            )
        )
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://test"
            ) as http,
        ):
            response = await http.post(
                "/v1/booking-events",
                json=booking_event(event_type),
                headers={"Authorization": f"Bearer {key}"},
            )
            assert response.status_code == 202
            await Dispatcher(ovh_runtime, worker_id="w").run_once()
            messages = {m["role"]: m for m in response.json()["messages"]}
            expected_roles = sorted(role for t, role in NINE_MESSAGES if t == event_type)
            assert sorted(messages) == expected_roles
            assert jobs.call_count == len(expected_roles)
            sent = {}
            for call in jobs.calls:
                request = call.request
                body = json.loads(request.content)
                sent[body["receivers"][0]] = (request, body)
            for role in expected_roles:
                request, body = sent[PHONES[role]]
                stored = (
                    await http.get(
                        f"/v1/messages/{messages[role]['id']}",
                        headers={"Authorization": f"Bearer {key}"},
                    )
                ).json()
                assert body == {
                    "message": NINE_MESSAGES[(event_type, role)],
                    "receivers": [PHONES[role]],
                    "noStopClause": True,
                    "priority": "high",
                    "tag": body["tag"],
                    "senderForResponse": True,
                    # What is left of the message's 24 h validity, in minutes.
                    "validityPeriod": 1440,
                }
                assert len(body["tag"]) <= 20
                assert stored["status"] == "submitted"
                assert stored["provider_id"] == str(
                    1000 + [c.request for c in jobs.calls].index(request)
                )
                assert stored["text"] == NINE_MESSAGES[(event_type, role)]
                assert request.headers["X-Ovh-Application"] == APP_KEY
                assert request.headers["X-Ovh-Consumer"] == CONSUMER
                assert request.headers["Content-Type"] == "application/json"
                assert request.headers["X-Ovh-Signature"] == _expected_signature(request)
                # Signed with OVHcloud's clock, not ours.
                assert abs(int(request.headers["X-Ovh-Timestamp"]) - OVH_TIME) < 60
