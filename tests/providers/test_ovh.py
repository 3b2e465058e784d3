"""OVH provider against a respx-mocked OVH API edge (no network)."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import httpx
import ovh
import ovh.client
import pytest
import respx

from smsgateway.providers.base import (
    JobResult,
    OutgoingJob,
    PermanentProviderError,
    SmsProvider,
    TransientProviderError,
    deadline,
)
from smsgateway.providers.ovh import (
    ENDPOINTS,
    OvhClient,
    OvhProvider,
    build_ovh_provider,
    parse_retry_after,
    resolve_endpoint,
    sign,
)

BASE = "https://eu.api.ovh.com/1.0"
NOW = 1_700_000_000
AK = "app-key-1234"
AS = "app-secret-very-secret"
CK = "consumer-key-also-secret"
SN = "sms-ab12345-1"
JOBS_URL = f"{BASE}/sms/{SN}/jobs"
OUTGOING_URL = f"{BASE}/sms/{SN}/outgoing"


def fixed_clock() -> float:
    return NOW + 0.75  # fractional on purpose: timestamps are truncated like OVH's client


def job(**overrides: Any) -> OutgoingJob:
    fields: dict[str, Any] = {
        "text": "Votre RDV est confirmé demain à 10h",
        "receivers": ["+33601020304"],
        "tag": "bk-42",
    }
    fields.update(overrides)
    return OutgoingJob(**fields)


def ok_report(*receivers: str, first_id: int = 1001) -> dict[str, Any]:
    return {
        "ids": [first_id + i for i in range(len(receivers))],
        "validReceivers": list(receivers),
        "invalidReceivers": [],
        "totalCreditsRemoved": float(len(receivers)),
        "tag": "bk-42",
    }


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as mock:
        mock.get(f"{BASE}/auth/time", name="time").respond(json=NOW)
        yield mock


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
def client(http: httpx.AsyncClient) -> OvhClient:
    return OvhClient("ovh-eu", AK, AS, CK, http=http, clock=fixed_clock)


@pytest.fixture
def provider(client: OvhClient) -> OvhProvider:
    return OvhProvider(client, SN, None)


def assert_signed(request: httpx.Request) -> None:
    """Recompute the signature from what was actually put on the wire."""
    headers = request.headers
    assert headers["X-Ovh-Application"] == AK
    assert headers["X-Ovh-Consumer"] == CK
    assert headers["Content-Type"] == "application/json"
    timestamp = headers["X-Ovh-Timestamp"]
    payload = "+".join(
        [AS, CK, request.method, str(request.url), request.content.decode(), timestamp]
    )
    expected = "$1$" + hashlib.sha1(payload.encode()).hexdigest()  # noqa: S324
    assert headers["X-Ovh-Signature"] == expected


# --- signing -----------------------------------------------------------------------------


def test_endpoints_match_official_package() -> None:
    for name, url in ENDPOINTS.items():
        assert ovh.client.ENDPOINTS[name] == url
    assert ENDPOINTS["ovh-eu"] == "https://eu.api.ovh.com/1.0"
    assert ENDPOINTS["ovh-ca"] == "https://ca.api.ovh.com/1.0"
    assert ENDPOINTS["ovh-us"] == "https://api.us.ovhcloud.com/1.0"


@pytest.mark.parametrize("name", ["ovh-eu", "ovh-ca", "ovh-us"])
def test_resolve_endpoint_names(name: str) -> None:
    assert resolve_endpoint(name) == ENDPOINTS[name]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:9000/1.0", "http://127.0.0.1:9000/1.0"),
        ("http://127.0.0.1:9000/1.0/", "http://127.0.0.1:9000/1.0"),
        ("https://eu.api.ovh.com/1.0", "https://eu.api.ovh.com/1.0"),
        ("http://localhost:8080", "http://localhost:8080"),
    ],
)
def test_resolve_endpoint_urls(url: str, expected: str) -> None:
    assert resolve_endpoint(url) == expected


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "ovh-xx",
        "kimsufi-eu",
        "eu.api.ovh.com/1.0",
        "ftp://eu.api.ovh.com/1.0",
        "http://",
        "http://user:pw@127.0.0.1/1.0",
        "http://127.0.0.1/1.0?x=1",
        "http://127.0.0.1:99999/1.0",
        "http://127.0.0.1:abc/1.0",
        "http://127.0.0.1/1 .0",
    ],
)
def test_resolve_endpoint_rejects_garbage(garbage: str) -> None:
    with pytest.raises(ValueError, match="unknown OVH endpoint"):
        resolve_endpoint(garbage)


def test_sign_known_vector() -> None:
    url = f"{JOBS_URL}"
    body = '{"message":"hi"}'
    raw = f"{AS}+{CK}+POST+{url}+{body}+{NOW}"
    expected = "$1$" + hashlib.sha1(raw.encode()).hexdigest()  # noqa: S324
    assert sign(AS, CK, "post", url, body, NOW) == expected
    assert sign(AS, CK, "POST", url, body.encode(), NOW) == expected


def test_sign_empty_body() -> None:
    raw = f"{AS}+{CK}+GET+{OUTGOING_URL}?tag=x++{NOW}"
    expected = "$1$" + hashlib.sha1(raw.encode()).hexdigest()  # noqa: S324
    assert sign(AS, CK, "GET", f"{OUTGOING_URL}?tag=x", b"", NOW) == expected


class _CapturedOvhCall:
    """What the official ``ovh`` client handed to its requests session."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def __call__(self, method: str, target: str, **kwargs: Any) -> Any:
        self.calls.append({"method": method, "target": target, **kwargs})

        class _Response:
            status_code = 200

            @staticmethod
            def json() -> Any:
                return ok_report("+33601020304")

        return _Response()


def official_client(monkeypatch: pytest.MonkeyPatch) -> tuple[ovh.Client, _CapturedOvhCall]:
    official = ovh.Client(
        endpoint="ovh-eu", application_key=AK, application_secret=AS, consumer_key=CK
    )
    captured = _CapturedOvhCall()
    monkeypatch.setattr(official._session, "request", captured)
    monkeypatch.setattr(ovh.client.time, "time", fixed_clock)
    official._time_delta = 100  # as if /auth/time had answered NOW + 100
    return official, captured


async def test_signature_matches_official_ovh_package_for_post(
    router: respx.MockRouter,
    provider: OvhProvider,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    router.routes["time"].respond(json=NOW + 100)
    route = router.post(JOBS_URL).respond(json=ok_report("+33601020304"))
    sent_job = job(receivers=["+33601020304"], validity_minutes=60)
    await provider.send(sent_job)
    ours = route.calls.last.request

    official, captured = official_client(monkeypatch)
    official.post(f"/sms/{SN}/jobs", **provider.build_job_body(sent_job))
    theirs = captured.calls[0]

    assert theirs["target"] == str(ours.url)
    assert theirs["data"].encode() == ours.content  # same bytes on the wire
    for header in ("X-Ovh-Application", "X-Ovh-Consumer", "X-Ovh-Timestamp", "X-Ovh-Signature"):
        assert theirs["headers"][header] == ours.headers[header], header
    assert ours.headers["X-Ovh-Timestamp"] == str(NOW + 100)


async def test_signature_matches_official_ovh_package_for_get_with_query(
    router: respx.MockRouter,
    provider: OvhProvider,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    router.routes["time"].respond(json=NOW + 100)
    route = router.get(OUTGOING_URL).respond(json=[1, 2])
    await provider.find_by_tag("bk-42")
    ours = route.calls.last.request

    official, captured = official_client(monkeypatch)
    official.get(f"/sms/{SN}/outgoing", tag="bk-42")
    theirs = captured.calls[0]

    assert theirs["target"] == str(ours.url) == f"{OUTGOING_URL}?tag=bk-42"
    assert theirs["headers"]["X-Ovh-Signature"] == ours.headers["X-Ovh-Signature"]
    assert theirs["headers"]["X-Ovh-Timestamp"] == ours.headers["X-Ovh-Timestamp"]


def test_our_sign_matches_official_package_formula(monkeypatch: pytest.MonkeyPatch) -> None:
    official, captured = official_client(monkeypatch)
    official.put("/sms/x/senders/ACME", description="é ü €")
    call = captured.calls[0]
    headers = call["headers"]
    ours = sign(AS, CK, "PUT", call["target"], call["data"], int(headers["X-Ovh-Timestamp"]))
    assert ours == headers["X-Ovh-Signature"]


# --- client: headers, clock ---------------------------------------------------------------


async def test_signed_headers_present_and_verifiable(
    router: respx.MockRouter, client: OvhClient
) -> None:
    route = router.post(JOBS_URL).respond(json={"ok": True})
    assert await client.call("POST", f"/sms/{SN}/jobs", json={"a": [1, 2], "b": "é"}) == {
        "ok": True
    }
    request = route.calls.last.request
    assert request.content == b'{"a":[1,2],"b":"\\u00e9"}'
    assert request.headers["X-Ovh-Timestamp"] == str(NOW)
    assert_signed(request)


async def test_query_string_is_signed_as_sent(router: respx.MockRouter, client: OvhClient) -> None:
    route = router.get(OUTGOING_URL).respond(json=[])
    await client.call("GET", f"/sms/{SN}/outgoing", params={"tag": "a b+c/é", "flag": True})
    request = route.calls.last.request
    assert request.url.params["tag"] == "a b+c/é"
    assert request.url.params["flag"] == "true"
    assert request.content == b""
    assert_signed(request)


async def test_clock_drift_is_applied_and_cached(
    router: respx.MockRouter, client: OvhClient
) -> None:
    router.routes["time"].respond(json=NOW + 100)
    route = router.get(OUTGOING_URL).respond(json=[])
    await client.call("GET", f"/sms/{SN}/outgoing")
    await client.call("GET", f"/sms/{SN}/outgoing")
    assert client.time_offset == 100
    assert router.routes["time"].call_count == 1
    time_request = router.routes["time"].calls.last.request
    assert "X-Ovh-Signature" not in time_request.headers
    for call in route.calls:
        assert call.request.headers["X-Ovh-Timestamp"] == str(NOW + 100)
        assert_signed(call.request)


async def test_clock_resync_and_single_retry_on_signature_complaint(
    router: respx.MockRouter, client: OvhClient
) -> None:
    router.routes["time"].side_effect = [
        httpx.Response(200, json=NOW - 500),
        httpx.Response(200, json=NOW + 30),
    ]
    route = router.post(JOBS_URL)
    route.side_effect = [
        httpx.Response(
            400, json={"errorCode": "INVALID_SIGNATURE", "message": "Invalid signature"}
        ),
        httpx.Response(200, json={"ok": 1}),
    ]
    assert await client.call("POST", f"/sms/{SN}/jobs", json={"x": 1}) == {"ok": 1}
    assert route.call_count == 2
    assert route.calls[0].request.headers["X-Ovh-Timestamp"] == str(NOW - 500)
    assert route.calls[1].request.headers["X-Ovh-Timestamp"] == str(NOW + 30)
    assert_signed(route.calls[1].request)


async def test_repeated_signature_complaint_waits_for_a_fix(
    router: respx.MockRouter, client: OvhClient
) -> None:
    """After one clock re-sync, a refused signature is ours to fix: retry later, not fail."""
    route = router.post(JOBS_URL).respond(
        403, json={"class": "Client::Forbidden", "message": "Query out of time"}
    )
    with pytest.raises(TransientProviderError) as info:
        await client.call("POST", f"/sms/{SN}/jobs", json={})
    assert route.call_count == 2
    assert router.routes["time"].call_count == 2
    assert info.value.status_code == 403
    assert info.value.uncertain is False


async def test_clock_sync_failure_is_certain_and_sends_nothing(
    router: respx.MockRouter, client: OvhClient
) -> None:
    router.routes["time"].side_effect = httpx.ReadTimeout("slow")
    route = router.post(JOBS_URL).respond(json={})
    with pytest.raises(TransientProviderError) as info:
        await client.call("POST", f"/sms/{SN}/jobs", json={})
    assert info.value.uncertain is False
    assert route.call_count == 0


# --- client: error mapping ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "uncertain"),
    [
        (httpx.ConnectError("refused"), False),
        (httpx.ConnectTimeout("slow connect"), False),
        (httpx.PoolTimeout("pool"), False),
        (httpx.ReadTimeout("slow read"), True),
        (httpx.WriteTimeout("slow write"), True),
        (httpx.ReadError("reset"), True),
        (httpx.RemoteProtocolError("server disconnected"), True),
    ],
)
async def test_transport_errors(
    router: respx.MockRouter, provider: OvhProvider, exc: Exception, uncertain: bool
) -> None:
    router.post(JOBS_URL).side_effect = exc
    with pytest.raises(TransientProviderError) as info:
        await provider.send(job())
    assert info.value.uncertain is uncertain
    assert info.value.status_code is None
    assert AS not in info.value.reason and CK not in info.value.reason


async def test_429_retry_after_seconds(router: respx.MockRouter, provider: OvhProvider) -> None:
    router.post(JOBS_URL).respond(
        429, headers={"Retry-After": "7"}, json={"message": "Too many requests"}
    )
    with pytest.raises(TransientProviderError) as info:
        await provider.send(job())
    assert info.value.retry_after == 7
    assert info.value.status_code == 429
    assert info.value.uncertain is False


async def test_429_retry_after_http_date(router: respx.MockRouter, provider: OvhProvider) -> None:
    when = datetime.fromtimestamp(NOW + 90, tz=UTC)
    router.post(JOBS_URL).respond(429, headers={"Retry-After": format_datetime(when, usegmt=True)})
    with pytest.raises(TransientProviderError) as info:
        await provider.send(job())
    assert info.value.retry_after == pytest.approx(90 - 0.75)


async def test_500_on_post_is_uncertain(router: respx.MockRouter, provider: OvhProvider) -> None:
    router.post(JOBS_URL).respond(
        500, json={"class": "Server::InternalServerError", "message": "Internal server error"}
    )
    with pytest.raises(TransientProviderError) as info:
        await provider.send(job())
    assert info.value.uncertain is True
    assert info.value.status_code == 500
    assert "Internal server error" in info.value.reason


async def test_503_on_get_is_certain(router: respx.MockRouter, provider: OvhProvider) -> None:
    router.get(OUTGOING_URL).respond(503, text="<html>bad gateway</html>")
    with pytest.raises(TransientProviderError) as info:
        await provider.find_by_tag("bk-42")
    assert info.value.uncertain is False
    assert info.value.reason == "OVH HTTP 503"


async def test_400_is_permanent_with_ovh_message(
    router: respx.MockRouter, provider: OvhProvider
) -> None:
    router.post(JOBS_URL).respond(
        400,
        json={"class": "Client::BadRequest", "message": "Invalid sender ACME"},
    )
    with pytest.raises(PermanentProviderError) as info:
        await provider.send(job(sender="ACME"))
    assert info.value.status_code == 400
    assert info.value.reason == "OVH HTTP 400 Client::BadRequest: Invalid sender ACME"


async def test_error_reason_is_scrubbed_and_truncated(
    router: respx.MockRouter, provider: OvhProvider
) -> None:
    router.post(JOBS_URL).respond(
        400,
        json={"class": "Client::BadRequest", "message": f"Bad key {CK} / {AS} " + "x" * 1000},
    )
    with pytest.raises(PermanentProviderError) as info:
        await provider.send(job())
    reason = info.value.reason
    assert CK not in reason and AS not in reason
    assert "***" in reason
    assert len(reason) <= 300


async def test_404_non_json_is_permanent(router: respx.MockRouter, provider: OvhProvider) -> None:
    router.post(JOBS_URL).respond(404, text="not found")
    with pytest.raises(PermanentProviderError) as info:
        await provider.send(job())
    assert info.value.reason == "OVH HTTP 404"


async def test_unreadable_success_on_post_is_uncertain(
    router: respx.MockRouter, provider: OvhProvider
) -> None:
    router.post(JOBS_URL).respond(200, text="{not json")
    with pytest.raises(TransientProviderError) as info:
        await provider.send(job())
    assert info.value.uncertain is True


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("7", 7.0),
        ("1.5", 1.5),
        ("-3", 0.0),
        ("soon", None),
        ("nan", None),
        ("Thu, 01 Jan 1970 00:00:10 GMT", 0.0),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == expected


# --- provider --------------------------------------------------------------------------------


async def test_send_body_without_sender_uses_sender_for_response(
    router: respx.MockRouter, provider: OvhProvider
) -> None:
    route = router.post(JOBS_URL).respond(json=ok_report("+33601020304", "+33611223344"))
    result = await provider.send(job(receivers=["+33601020304", "+33611223344"]))
    request = route.calls.last.request
    expected = {
        "message": "Votre RDV est confirmé demain à 10h",
        "receivers": ["+33601020304", "+33611223344"],
        "noStopClause": True,
        "priority": "high",
        "tag": "bk-42",
        "senderForResponse": True,
    }
    assert json.loads(request.content) == expected
    assert request.content == json.dumps(expected, separators=(",", ":")).encode()
    assert_signed(request)
    assert result == JobResult(
        ids={"+33601020304": "1001", "+33611223344": "1002"},
        invalid_receivers=[],
        credits_removed=2.0,
    )


async def test_send_body_with_default_sender_and_validity(
    router: respx.MockRouter, client: OvhClient
) -> None:
    provider = OvhProvider(client, SN, "ACME")
    route = router.post(JOBS_URL).respond(json=ok_report("+33601020304"))
    await provider.send(job(validity_minutes=120, priority="medium", no_stop_clause=False))
    body = json.loads(route.calls.last.request.content)
    assert body["sender"] == "ACME"
    assert "senderForResponse" not in body
    assert body["validityPeriod"] == 120
    assert body["priority"] == "medium"
    assert body["noStopClause"] is False


async def test_job_sender_overrides_default(router: respx.MockRouter, client: OvhClient) -> None:
    provider = OvhProvider(client, SN, "ACME")
    route = router.post(JOBS_URL).respond(json=ok_report("+33601020304"))
    await provider.send(job(sender="SHOP2"))
    body = json.loads(route.calls.last.request.content)
    assert body["sender"] == "SHOP2"
    assert "validityPeriod" not in body


async def test_tag_longer_than_20_is_refused_before_sending(
    router: respx.MockRouter, provider: OvhProvider
) -> None:
    route = router.post(JOBS_URL).respond(json=ok_report("+33601020304"))
    with pytest.raises(ValueError, match="20 characters"):
        await provider.send(job(tag="x" * 21))
    assert route.call_count == 0
    await provider.send(job(tag="x" * 20))
    assert json.loads(route.calls.last.request.content)["tag"] == "x" * 20


async def test_invalid_receivers_and_ovh_spelling(
    router: respx.MockRouter, provider: OvhProvider
) -> None:
    router.post(JOBS_URL).respond(
        json={
            "ids": [77],
            "validReceivers": ["0033611223344"],
            "invalidReceivers": ["+3360"],
            "totalCreditsRemoved": 1,
        }
    )
    result = await provider.send(job(receivers=["+3360", "+33611223344"]))
    assert result.ids == {"+33611223344": "77"}
    assert result.invalid_receivers == ["+3360"]
    assert result.credits_removed == 1.0


async def test_all_receivers_invalid(router: respx.MockRouter, provider: OvhProvider) -> None:
    router.post(JOBS_URL).respond(
        json={"ids": [], "validReceivers": [], "invalidReceivers": ["+1"], "totalCreditsRemoved": 0}
    )
    result = await provider.send(job(receivers=["+1"]))
    assert result == JobResult(ids={}, invalid_receivers=["+1"], credits_removed=0.0)


async def test_unmappable_answer_is_uncertain(
    router: respx.MockRouter, provider: OvhProvider
) -> None:
    router.post(JOBS_URL).respond(
        json={"ids": [1, 2], "validReceivers": ["+33601020304"], "invalidReceivers": []}
    )
    with pytest.raises(TransientProviderError) as info:
        await provider.send(job())
    assert info.value.uncertain is True


async def test_find_by_tag(router: respx.MockRouter, provider: OvhProvider) -> None:
    route = router.get(OUTGOING_URL, params={"tag": "bk-42"}).respond(json=[5, 6])
    assert await provider.find_by_tag("bk-42") == ["5", "6"]
    request = route.calls.last.request
    assert str(request.url) == f"{OUTGOING_URL}?tag=bk-42"
    assert_signed(request)


async def test_pending_jobs_and_their_receivers(
    router: respx.MockRouter, provider: OvhProvider
) -> None:
    router.get(JOBS_URL).respond(json=[7, 8])
    router.get(f"{JOBS_URL}/7").respond(json={"id": 7, "receiver": "+33601020304"})
    router.get(f"{JOBS_URL}/8").respond(
        404, json={"class": "Client::NotFound", "message": "The requested object does not exist"}
    )
    assert await provider.pending_jobs() == ["7", "8"]
    assert await provider.pending_job("7") == "+33601020304"
    assert await provider.pending_job("8") is None  # it ran meanwhile
    router.get(JOBS_URL).respond(json={"not": "a list"})
    with pytest.raises(TransientProviderError):
        await provider.pending_jobs()


async def test_get_outgoing(router: respx.MockRouter, provider: OvhProvider) -> None:
    router.get(f"{OUTGOING_URL}/5").respond(json={"id": 5, "ptt": 1})
    assert await provider.get_outgoing("5") == {"id": 5, "ptt": 1}


async def test_build_ovh_provider_with_local_url_and_owned_client() -> None:
    provider = build_ovh_provider("http://127.0.0.1:9000/1.0/", AK, AS, CK, SN, None, timeout=3.0)
    checked: SmsProvider = provider
    assert checked.name == "ovh"
    assert provider.client.base_url == "http://127.0.0.1:9000/1.0"
    assert provider.client.owns_http
    http = provider.client._http
    assert http.timeout.read == 3.0
    with respx.mock:
        respx.get("http://127.0.0.1:9000/1.0/auth/time").respond(json=NOW)
        route = respx.get(f"http://127.0.0.1:9000/1.0/sms/{SN}/outgoing").respond(json=[])
        assert await provider.find_by_tag("t") == []
        assert route.called
    await provider.aclose()
    assert http.is_closed


async def test_shared_http_client_is_not_closed(http: httpx.AsyncClient) -> None:
    provider = build_ovh_provider("ovh-ca", AK, AS, CK, SN, "ACME", http=http)
    assert provider.client.base_url == "https://ca.api.ovh.com/1.0"
    assert not provider.client.owns_http
    await provider.aclose()
    assert not http.is_closed


def test_secrets_not_in_repr(client: OvhClient) -> None:
    provider = OvhProvider(client, SN, None)
    for text in (repr(client), repr(provider)):
        assert AS not in text and CK not in text


def test_missing_credentials_refused() -> None:
    with pytest.raises(ValueError, match="needed"):
        OvhClient("ovh-eu", AK, "", CK)


async def test_no_request_leaves_after_the_send_deadline(
    router: respx.MockRouter, provider: OvhProvider
) -> None:
    route = router.post(JOBS_URL).respond(json=ok_report("+33601020304"))
    past = asyncio.get_running_loop().time() - 0.001
    with deadline(past), pytest.raises(TransientProviderError) as raised:
        await provider.send(job())
    assert raised.value.uncertain is False  # nothing left: safe to send again
    assert not route.called
    with deadline(asyncio.get_running_loop().time() + 60):
        await provider.send(job())
    assert route.call_count == 1
