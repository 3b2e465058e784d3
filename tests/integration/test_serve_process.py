"""End to end with real processes on loopback: ``smsgateway serve`` and the fake OVH API.

The gateway sends through HTTP to the fake, which pushes the delivery report back to the
gateway's callback URL. The database is a SQLite file, or, when
``SMSGW_TEST_DATABASE_URL`` points at PostgreSQL, a database of its own on that server
(the suite's fixtures reset and empty the shared test database under other tests' feet).
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path

import httpx

from smsgateway.models.messages import provider_tag_for
from tests.conftest import booking_event
from tests.databases import own_database
from tests.processes import (
    Process,
    create_client,
    fake_ovh_endpoint,
    free_port,
    gateway_env,
    ovh_settings,
    process_group,
    start_fake_ovh,
    wait_until_ok,
)

DEADLINE_S = 20.0


def test_booking_event_is_sent_once_and_delivered(tmp_path: Path) -> None:
    api_port = free_port()
    api = f"http://127.0.0.1:{api_port}"
    token = f"cb-{secrets.token_hex(16)}"
    with own_database(tmp_path, "smsgw_it") as database_url, process_group(80) as processes:
        dlr_url = f"{api}/v1/providers/ovh/{token}/dlr"
        processes.append(fake := start_fake_ovh(tmp_path, callback_urls=[dlr_url]))
        endpoint = fake_ovh_endpoint(fake)
        env = gateway_env(
            database_url,
            **ovh_settings(endpoint, token),
            require_verified_phone="false",
            worker_poll_seconds="0.2",
        )
        api_key = create_client(env, tmp_path, "it")
        serve_args = ["-m", "smsgateway", "serve", "--port", str(api_port)]
        processes.append(gateway := Process("gateway", serve_args, env, tmp_path))
        wait_until_ok(f"{api}/readyz", gateway)
        with httpx.Client(timeout=5) as http:
            run_scenario(http, api, endpoint.removesuffix("/1.0"), api_key)


def run_scenario(http: httpx.Client, api: str, fake: str, api_key: str) -> None:
    """Post the event, wait for delivery, replay it: one SMS reached the fake."""
    auth = {"Authorization": f"Bearer {api_key}"}
    event = booking_event(event_id=f"evt-it-{secrets.token_hex(4)}")

    first = http.post(f"{api}/v1/booking-events", json=event, headers=auth)
    assert first.status_code == 202, first.text
    [entry] = first.json()["messages"]  # booking.requested: the offeror only
    assert entry["status"] == "queued"
    message_id = entry["id"]

    deadline = time.monotonic() + DEADLINE_S
    while True:
        message = http.get(f"{api}/v1/messages/{message_id}", headers=auth).json()
        if message["status"] == "delivered":
            break
        assert time.monotonic() < deadline, f"still {message}"
        time.sleep(0.1)

    sent = [s for s in http.get(f"{fake}/_control/sent").json() if s["message"] == message["text"]]
    assert len(sent) == 1, sent
    assert sent[0]["receiver"] == "+33611223344"
    assert sent[0]["noStopClause"] is True
    assert sent[0]["tag"] == provider_tag_for(message_id)
    assert str(sent[0]["id"]) == message["provider_id"]
    assert message["delivered_at"]

    again = http.post(f"{api}/v1/booking-events", json=event, headers=auth)
    assert again.status_code == 200, again.text  # a replay answers the first answer
    assert again.json() == first.json()
    time.sleep(1.0)  # several dispatcher polls
    stats = http.get(f"{fake}/_control/stats").json()
    assert stats["accepted"] == 1, stats
    assert stats["duplicates"] == 0
    assert stats["dlr_pushed"] >= 1
