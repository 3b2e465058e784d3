"""Request size limits (413) and field length limits (422), and log scrubbing."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from smsgateway.errors import PROBLEM_JSON
from smsgateway.limits import BodySizeLimit, ScrubAccessLog, scrub
from tests.conftest import booking_event

MIB = 1024 * 1024


async def _chunks(total: int, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    sent = 0
    while sent < total:
        chunk = b" " * min(size, total - sent)
        sent += len(chunk)
        yield chunk


async def test_a_body_declared_over_the_limit_is_refused_before_it_is_read(
    http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    body = b'{"event_id": "' + b"x" * (MIB + 10) + b'"}'
    response = await http.post(
        "/v1/booking-events",
        content=body,
        headers={**auth, "content-type": "application/json"},
    )
    assert response.status_code == 413
    assert response.headers["content-type"] == PROBLEM_JSON
    problem = response.json()
    assert problem["type"].endswith("/payload-too-large")
    assert problem["status"] == 413
    assert problem["limit_bytes"] == MIB
    assert "1048576 bytes" in problem["detail"]


async def test_a_chunked_body_is_counted_as_it_streams(
    http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    response = await http.post(
        "/v1/booking-events",
        content=_chunks(MIB + 1),
        headers={**auth, "content-type": "application/json"},
    )
    assert "content-length" not in response.request.headers
    assert response.status_code == 413, response.text
    assert response.headers["connection"] == "close"
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.json()["type"].endswith("/payload-too-large")


async def test_a_body_at_the_limit_goes_through_to_validation(
    http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    response = await http.post(
        "/v1/booking-events",
        content=b" " * (MIB - 2) + b"{}",
        headers={**auth, "content-type": "application/json"},
    )
    assert response.status_code == 422  # read in full, then found wanting


async def _echo_length(scope: Scope, receive: Receive, send: Send) -> None:
    """A stand-in app that reads the whole body and answers its length."""
    size, more = 0, True
    while more:
        message = await receive()
        size += len(message.get("body", b""))
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": str(size).encode()})


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/v1/booking-events", 1000),
        ("/v1/campaigns", 5000),
        ("/v1/campaigns/c-1/recipients", 5000),
        ("/v1/campaigns-archive", 1000),  # a prefix is a whole path segment
        ("/v1/campaigns/uploads/x", 9000),  # the longest prefix wins
    ],
)
async def test_limits_are_per_path_prefix(path: str, allowed: int) -> None:
    app = BodySizeLimit(
        _echo_length,
        default_limit=1000,
        path_limits={"/v1/campaigns": 5000, "/v1/campaigns/uploads": 9000},
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        fits = await client.post(path, content=b"x" * allowed)
        assert (fits.status_code, fits.text) == (200, str(allowed))
        declared = await client.post(path, content=b"x" * (allowed + 1))
        assert declared.status_code == 413
        assert declared.json()["limit_bytes"] == allowed
        streamed = await client.post(path, content=_chunks(allowed + 1, size=100))
        assert streamed.status_code == 413
        assert streamed.headers["connection"] == "close"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"event_id": "e" * 129}, "body.event_id"),
        ({"booking": {"id": "b" * 129, "title": "Kayak"}}, "body.booking.id"),
        ({"booking": {"id": "b-1", "title": "t" * 201}}, "body.booking.title"),
        (
            {"offeror": {"user_ref": "u-2", "name": "n" * 101, "phone": "+33611223344"}},
            "body.offeror.name",
        ),
        (
            {"offeror": {"user_ref": "u" * 129, "phone": "+33611223344"}},
            "body.offeror.user_ref",
        ),
        ({"offeror": {"user_ref": "u-2", "phone": "+3" + "3" * 40}}, "body.offeror.phone"),
    ],
)
async def test_booking_event_fields_have_length_limits(
    http: httpx.AsyncClient, auth: dict[str, str], change: dict[str, Any], field: str
) -> None:
    response = await http.post("/v1/booking-events", json=booking_event(**change), headers=auth)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    assert field in [error["field"] for error in response.json()["errors"]]


async def test_message_text_is_at_most_1600_characters(
    http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    ok = await http.post(
        "/v1/messages", json={"to": "+33611223344", "text": "a" * 1600}, headers=auth
    )
    assert ok.status_code == 202, ok.text
    too_long = await http.post(
        "/v1/messages", json={"to": "+33611223344", "text": "a" * 1601}, headers=auth
    )
    assert too_long.status_code == 422
    assert [e["field"] for e in too_long.json()["errors"]] == ["body.text"]
    assert "aaaa" not in too_long.text  # values are never echoed


async def test_a_413_never_echoes_the_callback_token(http: httpx.AsyncClient) -> None:
    response = await http.post("/v1/providers/ovh/s3cret-token/dlr", content=b"x" * (MIB + 1))
    assert response.status_code == 413
    assert "s3cret-token" not in response.text
    assert response.json()["instance"] == "/v1/providers/ovh/{token}/dlr"


def test_scrub_masks_callback_tokens_queries_and_numbers() -> None:
    line = '127.0.0.1 - "GET /v1/providers/ovh/s3cret-token/dlr?id=7&receiver=%2B33611223344"'
    assert scrub(line) == '127.0.0.1 - "GET /v1/providers/ovh/{token}/dlr?…"'
    assert scrub("POST /v1/providers/ovh/s3cret-token/incoming") == (
        "POST /v1/providers/ovh/{token}/incoming"
    )
    assert scrub("PATCH /v1/phones/33611223344") == "PATCH /v1/phones/33*******44"
    assert scrub("PATCH /v1/phones/%2B33611223344") == "PATCH /v1/phones/%2B33*******44"
    assert scrub("GET /v1/messages/0b7e4f7c-1234-4c1e-9f00-123456789012") == (
        "GET /v1/messages/0b7e4f7c-1234-4c1e-9f00-123456789012"
    )


def test_the_access_log_filter_scrubs_arguments(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("tests.limits.access")
    logger.addFilter(ScrubAccessLog())
    with caplog.at_level(logging.INFO, logger=logger.name):
        logger.info(
            '%s - "%s %s HTTP/%s" %d',
            "127.0.0.1:5000",
            "GET",
            "/v1/providers/ovh/s3cret-token/dlr?id=1&receiver=%2B33611223344",
            "1.1",
            200,
        )
    [record] = caplog.records
    assert "s3cret-token" not in record.getMessage()
    assert "33611223344" not in record.getMessage()
    assert "/v1/providers/ovh/{token}/dlr" in record.getMessage()
