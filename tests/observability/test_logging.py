"""JSON log lines: the request id from the HTTP answer to the provider call, numbers masked."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from smsgateway.messages.dispatcher import Dispatcher
from smsgateway.observability.logging import build_handler, configure_logging, mask_phones
from smsgateway.runtime import Runtime
from tests.conftest import CALLBACK_TOKEN, booking_event

OFFEROR = "+33611223344"  # the DESIGN example's offeror


class Lines:
    """What the JSON handler wrote, one object per line."""

    def __init__(self, stream: io.StringIO) -> None:
        self.stream = stream

    @property
    def raw(self) -> str:
        return self.stream.getvalue()

    def all(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.raw.splitlines() if line]

    def with_id(self, request_id: str) -> list[dict[str, Any]]:
        return [line for line in self.all() if line.get("request_id") == request_id]


@pytest.fixture
def json_lines() -> Iterator[Lines]:
    stream = io.StringIO()
    handler = build_handler("json", stream)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield Lines(stream)
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


async def test_request_id_goes_from_the_http_answer_to_the_provider_call(
    observed: Runtime,
    http: httpx.AsyncClient,
    auth: dict[str, str],
    json_lines: Lines,
) -> None:
    response = await http.post("/v1/booking-events", json=booking_event(), headers=auth)
    assert response.status_code == 202
    request_id = response.headers["x-request-id"]
    assert len(request_id) == 32
    message_id = response.json()["messages"][0]["id"]

    # The dispatcher runs later, elsewhere: the id travels with the stored message.
    assert await Dispatcher(observed, worker_id="log-test").run_once() == 1

    lines = json_lines.with_id(request_id)
    loggers = [line["logger"] for line in lines]
    assert "smsgateway.access" in loggers
    assert "smsgateway.events.service" in loggers  # "event accepted"
    [call] = [line for line in lines if line["logger"] == "smsgateway.provider"]
    assert call["operation"] == "send"
    assert call["outcome"] == "ok"
    assert call["duration_ms"] >= 0
    # The dispatcher's own line about that message's provider call.
    [sent] = [
        line
        for line in lines
        if line["logger"].startswith("smsgateway.messages") and message_id in line["message"]
    ]
    assert "+336******44" in sent["message"]
    access = next(line for line in lines if line["logger"] == "smsgateway.access")
    assert access["status"] == 202
    assert access["path"] == "/v1/booking-events"
    for line in json_lines.all():
        assert {"time", "level", "logger", "message"} <= set(line)
    assert OFFEROR not in json_lines.raw


async def test_a_sane_caller_request_id_is_kept_and_others_replaced(
    http: httpx.AsyncClient, json_lines: Lines
) -> None:
    kept = await http.get("/healthz", headers={"X-Request-ID": "shop-7f3a:1"})
    assert kept.headers["x-request-id"] == "shop-7f3a:1"
    assert json_lines.with_id("shop-7f3a:1")

    for unsafe in ("has spaces in it", "x" * 65, "semi;colon"):
        replaced = await http.get("/healthz", headers={"X-Request-ID": unsafe})
        assert replaced.headers["x-request-id"] != unsafe
        assert len(replaced.headers["x-request-id"]) == 32


async def test_callback_token_never_reaches_the_access_log(
    http: httpx.AsyncClient, json_lines: Lines
) -> None:
    await http.get(f"/v1/providers/ovh/{CALLBACK_TOKEN}/dlr", params={"id": "1", "dlr": "1"})
    server = [line for line in json_lines.all() if not line["logger"].startswith("httpx")]
    [access] = [line for line in server if line["logger"] == "smsgateway.access"]
    assert access["path"] == "/v1/providers/ovh/{token}/dlr"
    assert CALLBACK_TOKEN not in json.dumps(server)


def test_phone_numbers_are_masked_in_every_line(json_lines: Lines) -> None:
    logger = logging.getLogger("some.library")
    logger.info("texting %s and 0033601020304", "+33601020304", extra={"step": 2})
    try:
        raise ValueError("bad number +48512345678")
    except ValueError:
        logger.exception("failed")
    first, failed = json_lines.all()
    assert first["message"] == "texting +336******04 and 0033*******04"
    assert first["step"] == 2
    assert "+485******78" in failed["exception"]
    for number in ("+33601020304", "0033601020304", "+48512345678"):
        assert number not in json_lines.raw


def test_mask_keeps_what_is_not_a_phone_number() -> None:
    assert mask_phones("message 1732219200123 took 12.5 ms") == (
        "message 1732219200123 took 12.5 ms"
    )
    assert mask_phones("to=+33601020304,") == "to=+336******04,"


def test_text_format_shows_the_request_id() -> None:
    stream = io.StringIO()
    handler = build_handler("text", stream)
    logger = logging.getLogger("smsgateway.test_text")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        logger.info("hello %s", "+33601020304")
    finally:
        logger.removeHandler(handler)
    assert stream.getvalue().rstrip().endswith("smsgateway.test_text [-] hello +336******04")


@pytest.mark.parametrize(
    ("path", "shown"),
    [
        # Unmatched (a trailing slash, a typo): redacted all the same.
        (f"/v1/providers/ovh/{CALLBACK_TOKEN}/dlr/", "/v1/providers/ovh/{token}/dlr/"),
        (f"/v1/providers/ovh/{CALLBACK_TOKEN}/nope", "/v1/providers/ovh/{token}/nope"),
        ("/v1/phones/+33611223344/", "/v1/phones/+336******44/"),
        ("/v1/phones/%2B33611223344", "/v1/phones/+336******44"),
        ("/v1/anything/sk_0123456789abcdefghijklmnop", "/v1/anything/{redacted}"),
    ],
)
async def test_access_log_and_problem_bodies_redact_every_path(
    http: httpx.AsyncClient, auth: dict[str, str], json_lines: Lines, path: str, shown: str
) -> None:
    answer = await http.get(path, params={"id": "1", "to": "+33611223344"}, headers=auth)
    server = [line for line in json_lines.all() if not line["logger"].startswith("httpx")]
    [access] = [line for line in server if line["logger"] == "smsgateway.access"]
    assert access["path"] == shown
    for secret in (CALLBACK_TOKEN, "33611223344", "sk_0123456789", "?"):
        assert secret not in json.dumps(server)
        assert secret not in answer.text


async def test_a_matched_route_masks_the_number_in_its_path(
    http: httpx.AsyncClient, auth: dict[str, str], json_lines: Lines
) -> None:
    answer = await http.get("/v1/phones/+33611223344", headers=auth)
    [access] = [line for line in json_lines.all() if line["logger"] == "smsgateway.access"]
    assert access["path"] == "/v1/phones/+336******44"
    assert "33611223344" not in answer.text


def test_http_client_loggers_never_print_urls() -> None:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    configure_logging("DEBUG", "json")
    try:
        assert not logging.getLogger("httpx").isEnabledFor(logging.INFO)
        assert not logging.getLogger("httpcore").isEnabledFor(logging.INFO)
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
