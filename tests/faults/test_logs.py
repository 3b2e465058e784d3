"""Secrets and full phone numbers never reach a log record.

Representative flows run with every logger at DEBUG: an admin creates a client (its
API key and webhook secret come back once), a booking event is posted, the dispatcher
sends it through the OVHcloud adapter (real credential strings, HTTP mocked with
respx), OVHcloud calls back with a delivery report and with a STOP, a number is
registered and suspended, and the webhooks go out. Every record's message, arguments
and traceback are then searched for the secrets and for the test numbers written in
any way (E.164, digits only, the ``00`` international prefix).

The records are read before any handler sees them, so a number masked only by the
log formatter would still count as a leak.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import respx

from smsgateway.app import create_app
from smsgateway.config import Settings
from smsgateway.limits import install_log_scrubbing
from smsgateway.messages.dispatcher import Dispatcher
from smsgateway.observability.logging import configure_logging
from smsgateway.providers.ovh import build_ovh_provider
from smsgateway.runtime import Runtime, build_runtime
from smsgateway.webhooks.sender import WebhookSender
from tests.conftest import ADMIN_TOKEN, CALLBACK_TOKEN, _empty_tables, booking_event

BASE = "https://eu.api.ovh.com/1.0"
APP_KEY = "ovh-app-key-7f3a9c"
APP_SECRET = "ovh-app-secret-b81d44e2"
CONSUMER_KEY = "ovh-consumer-key-5c0e71"
SERVICE = "sms-ab12345-1"
WEBHOOK = "https://marketplace.test/hooks/sms"
PHONES = ("+33601020304", "+33611223344", "+33612345678")


def spellings(number: str) -> list[str]:
    digits = number.removeprefix("+")
    return [number, digits, "00" + digits, "%2B" + digits]


@pytest.fixture
async def ovh_runtime(settings: Settings) -> AsyncIterator[Runtime]:
    provider = build_ovh_provider(BASE, APP_KEY, APP_SECRET, CONSUMER_KEY, SERVICE, sender=None)
    runtime = build_runtime(
        settings.model_copy(
            update={
                "provider": settings.provider.model_copy(update={"name": "ovh"}),
                "ovh": settings.ovh.model_copy(update={"service_name": SERVICE}),
            }
        ),
        provider=provider,
    )
    try:
        yield runtime
    finally:
        await _empty_tables(runtime)
        await runtime.aclose()


@pytest.fixture
def service_logging() -> Iterator[None]:
    """Logging as ``smsgateway serve`` and ``worker`` set it up with SMSGW_LOG_LEVEL=DEBUG.

    Put back afterwards: the root handler, levels and logger flags are process-wide.
    """
    root = logging.getLogger()
    names = ["uvicorn", "uvicorn.error", "uvicorn.access", "aiosqlite", "smsgateway.access"]
    saved = (
        list(root.handlers),
        root.level,
        {n: (logging.getLogger(n).level, logging.getLogger(n).disabled) for n in names},
        {n: list(logging.getLogger(n).filters) for n in names},
    )
    configure_logging("DEBUG", "text")
    try:
        yield
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        for name, (level, disabled) in saved[2].items():
            logging.getLogger(name).setLevel(level)
            logging.getLogger(name).disabled = disabled
            logging.getLogger(name).filters[:] = saved[3][name]


def _jobs_answer(request: httpx.Request) -> httpx.Response:
    receivers = json.loads(request.content)["receivers"]
    ids = [7_000_001 + n for n in range(len(receivers))]
    return httpx.Response(
        200,
        json={
            "ids": ids,
            "validReceivers": receivers,
            "invalidReceivers": [],
            "totalCreditsRemoved": len(ids),
        },
    )


async def test_no_secret_or_phone_number_is_logged(
    service_logging: None, ovh_runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    install_log_scrubbing()  # on uvicorn's loggers, as the app does
    app = create_app(runtime=ovh_runtime)
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    with respx.mock(assert_all_called=False) as mock:
        mock.get(f"{BASE}/auth/time").respond(200, json=1_790_000_000)
        mock.post(f"{BASE}/sms/{SERVICE}/jobs").mock(side_effect=_jobs_answer)
        mock.post(WEBHOOK).respond(200)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://test"
            ) as http,
        ):
            created = await http.post(
                "/v1/admin/clients",
                json={"name": "marketplace", "quota": 100, "webhook_url": WEBHOOK},
                headers=admin,
            )
            assert created.status_code == 201, created.text
            api_key = created.json()["api_key"]
            webhook_secret = created.json()["webhook_secret"]
            auth = {"Authorization": f"Bearer {api_key}"}

            event = await http.post(
                "/v1/booking-events", json=booking_event("booking.starting_soon"), headers=auth
            )
            assert event.status_code == 202, event.text
            registered = await http.put(
                "/v1/users/u-3/phone",
                json={"phone": PHONES[2], "language": "fr", "method": "code"},
                headers=auth,
            )
            assert registered.status_code == 201, registered.text
            wrong = await http.post(
                "/v1/users/u-3/phone/verify", json={"code": "000000"}, headers=auth
            )
            assert wrong.status_code in (410, 422, 429)

            await Dispatcher(ovh_runtime, worker_id="logs-test").run_once()
            sent = await http.get("/v1/messages", headers=auth)
            provider_ids = [m["provider_id"] for m in sent.json()["items"] if m["provider_id"]]
            assert provider_ids, sent.text

            callbacks = f"/v1/providers/ovh/{CALLBACK_TOKEN}"
            for provider_id in provider_ids:
                report = await http.get(
                    f"{callbacks}/dlr",
                    params={
                        "id": provider_id,
                        "dlr": "1",
                        "ptt": "4",
                        "receiver": PHONES[1],
                        "descriptionDlr": "Success",
                    },
                )
                assert report.status_code == 200, report.text
            stop = await http.get(
                f"{callbacks}/incoming",
                params={"sender": PHONES[1], "message": "STOP", "id": "91"},
            )
            assert stop.status_code == 200, stop.text
            wrong_token = await http.get(
                "/v1/providers/ovh/not-the-token/dlr", params={"id": "1", "dlr": "1"}
            )
            assert wrong_token.status_code == 404
            suspended = await http.patch(
                f"/v1/phones/{PHONES[2].removeprefix('+')}",
                json={"status": "suspended"},
                headers=auth,
            )
            assert suspended.status_code == 200, suspended.text
            unknown = await http.get(f"/v1/messages/{PHONES[0]}", headers=auth)
            assert unknown.status_code in (404, 422)

            async with httpx.AsyncClient() as webhook_http:
                await WebhookSender(ovh_runtime, webhook_http, worker_id="logs-test").run_once()
            assert mock.routes[2].called, "webhooks went out"

    secrets = {
        "API key": api_key,
        "webhook secret": webhook_secret,
        "admin token": ADMIN_TOKEN,
        "callback token": CALLBACK_TOKEN,
        "OVH application key": APP_KEY,
        "OVH application secret": APP_SECRET,
        "OVH consumer key": CONSUMER_KEY,
    }
    for number in PHONES:
        for spelling in spellings(number):
            secrets[f"phone number {spelling}"] = spelling

    records = caplog.records
    assert len(records) > 20, "the flows logged something"
    leaks = []
    for record in records:
        if record.name == "httpx" and "http://test/" in record.getMessage():
            continue  # this test's own client, calling the app in process
        texts = [record.getMessage(), repr(record.args), record.exc_text or ""]
        if record.exc_info and record.exc_info[1] is not None:
            texts.append(logging.Formatter().formatException(record.exc_info))
        found = [name for name, secret in secrets.items() if any(secret in t for t in texts)]
        if found:
            leaks.append(f"{record.name}: {found}: {record.getMessage()[:200]}")
    assert not leaks, "\n".join(leaks)
