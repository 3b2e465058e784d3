"""The fake OVHcloud API, driven by the project's own OVH client.

Most tests run the fake in process through ``httpx.ASGITransport``; timeouts and
dropped connections need real sockets, so those tests serve it with uvicorn on a
loopback port in a background thread.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn

from smsgateway.providers.base import (
    OutgoingJob,
    PermanentProviderError,
    TransientProviderError,
)
from smsgateway.providers.ovh import OvhClient, OvhProvider, build_ovh_provider, sign
from smsgateway.testing.fake_ovh import FakeOvhConfig, FakeOvhState, create_fake_ovh
from smsgateway.testing.fake_ovh_faults import FaultPlan, FaultSettings

CONFIG = FakeOvhConfig(dlr_delay=0.01, first_id=100_001)
BASE = "http://fake-ovh.test"
SERVICE = CONFIG.service_name
ANNA = "+33601020304"
MARC = "+33611223344"
CALLBACK = "http://gateway.test/v1/providers/ovh/secret-token/dlr"


def job(**overrides: Any) -> OutgoingJob:
    fields: dict[str, Any] = {
        "text": "Kayak for two: new request",
        "receivers": [ANNA],
        "tag": "bk-42",
        **overrides,
    }
    return OutgoingJob(**fields)


def make_provider(
    http: httpx.AsyncClient,
    base: str = BASE,
    *,
    application_key: str = CONFIG.application_key,
    application_secret: str = CONFIG.application_secret,
) -> OvhProvider:
    return build_ovh_provider(
        f"{base}/1.0",
        application_key,
        application_secret,
        CONFIG.consumer_key,
        SERVICE,
        sender=None,
        http=http,
    )


@pytest.fixture
def state() -> FakeOvhState:
    return FakeOvhState(CONFIG)


@pytest.fixture
async def http(state: FakeOvhState) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_fake_ovh(state=state))
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        yield client
    await state.aclose()


@pytest.fixture
def provider(http: httpx.AsyncClient) -> OvhProvider:
    return make_provider(http)


async def set_faults(http: httpx.AsyncClient, **settings: Any) -> None:
    response = await http.post("/_control/faults", json=settings)
    assert response.status_code == 200, response.text


async def until(condition: Any, seconds: float = 2.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


# -- signing ------------------------------------------------------------------------


async def test_signed_job_is_accepted_and_recorded(
    provider: OvhProvider, http: httpx.AsyncClient
) -> None:
    result = await provider.send(job(receivers=[ANNA, MARC]))

    assert result.ids == {ANNA: "100001", MARC: "100002"}
    assert result.credits_removed == 2.0
    sent = (await http.get("/_control/sent")).json()
    assert [(s["id"], s["receiver"]) for s in sent] == [(100001, ANNA), (100002, MARC)]
    assert sent[0]["message"] == "Kayak for two: new request"
    assert sent[0]["tag"] == "bk-42"
    assert sent[0]["noStopClause"] is True
    assert sent[0]["senderForResponse"] is True
    stats = (await http.get("/_control/stats")).json()
    assert stats["accepted"] == 2
    assert stats["duplicates"] == 0


async def test_credits_count_parts_and_the_stop_clause(provider: OvhProvider) -> None:
    text = "x" * 150  # one part alone, two once OVH appends its 11-character STOP mention

    assert (await provider.send(job(text=text))).credits_removed == 1.0
    assert (await provider.send(job(text=text, no_stop_clause=False))).credits_removed == 2.0


async def test_wrong_secret_is_refused_as_an_invalid_signature(
    http: httpx.AsyncClient, state: FakeOvhState
) -> None:
    intruder = make_provider(http, application_secret="not-the-secret")

    with pytest.raises(TransientProviderError) as refused:
        await intruder.send(job())

    assert refused.value.status_code == 400
    assert "Invalid signature" in refused.value.reason
    assert state.sent == {}


async def test_unknown_application_key_is_forbidden(http: httpx.AsyncClient) -> None:
    stranger = make_provider(http, application_key="someone-else")

    with pytest.raises(TransientProviderError) as refused:
        await stranger.send(job())

    assert refused.value.status_code == 403


async def test_stale_timestamp_is_out_of_time(http: httpx.AsyncClient) -> None:
    url = f"{BASE}/1.0/sms/{SERVICE}/outgoing"
    stale = int(time.time()) - 3600
    headers = {
        "X-Ovh-Application": CONFIG.application_key,
        "X-Ovh-Consumer": CONFIG.consumer_key,
        "X-Ovh-Timestamp": str(stale),
        "X-Ovh-Signature": sign(
            CONFIG.application_secret, CONFIG.consumer_key, "GET", url, b"", stale
        ),
    }

    response = await http.get(url, headers=headers)

    assert response.status_code == 400
    assert response.json()["errorCode"] == "QUERY_TIME_OUT"


async def test_client_with_a_wrong_clock_syncs_with_auth_time(http: httpx.AsyncClient) -> None:
    client = OvhClient(
        f"{BASE}/1.0",
        CONFIG.application_key,
        CONFIG.application_secret,
        CONFIG.consumer_key,
        http=http,
        clock=lambda: time.time() - 7200,
    )

    assert await client.call("GET", f"/sms/{SERVICE}/blacklists") == []
    assert client.time_offset is not None and abs(client.time_offset - 7200) <= 2


async def test_signature_covers_the_query_string_as_sent(provider: OvhProvider) -> None:
    tag = "b 42+é/&=?"  # spaces, reserved and non-ASCII characters in the query

    sent = await provider.send(job(tag=tag))

    assert await provider.find_by_tag(tag) == [sent.ids[ANNA]]


# -- jobs and lookups ---------------------------------------------------------------


async def test_receivers_that_are_not_e164_are_invalid(provider: OvhProvider) -> None:
    result = await provider.send(job(receivers=[ANNA, "0601020304", "+33 6 11", "hello"]))

    assert list(result.ids) == [ANNA]
    assert result.invalid_receivers == ["0601020304", "+33 6 11", "hello"]
    assert result.credits_removed == 1.0


async def test_blacklisted_numbers_are_invalid_receivers(
    provider: OvhProvider, http: httpx.AsyncClient
) -> None:
    await http.post("/_control/blacklists", json={"number": MARC})

    result = await provider.send(job(receivers=[ANNA, MARC]))

    assert result.invalid_receivers == [MARC]
    assert await provider.client.call("GET", f"/sms/{SERVICE}/blacklists") == [MARC]


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        ({"message": "hi", "receivers": [ANNA]}, "sender"),
        ({"message": "hi", "receivers": [], "senderForResponse": True}, "receivers"),
        ({"message": "", "receivers": [ANNA], "senderForResponse": True}, "message"),
        ({"message": "hi", "receivers": [ANNA], "sender": "X", "tag": "t" * 21}, "tag"),
        ({"message": "hi", "receivers": [ANNA], "sender": "X", "noStopClause": "yes"}, "noStop"),
    ],
)
async def test_malformed_jobs_are_bad_requests(
    provider: OvhProvider, body: dict[str, Any], complaint: str
) -> None:
    with pytest.raises(PermanentProviderError) as refused:
        await provider.client.call("POST", f"/sms/{SERVICE}/jobs", json=body)

    assert refused.value.status_code == 400
    assert complaint in refused.value.reason


async def test_unknown_service_is_not_found(http: httpx.AsyncClient) -> None:
    other = OvhProvider(make_provider(http).client, "sms-zz99999-1")

    with pytest.raises(PermanentProviderError) as refused:
        await other.send(job())

    assert refused.value.status_code == 404


async def test_outgoing_lookup_by_tag_and_details(provider: OvhProvider) -> None:
    first = await provider.send(job(tag="bk-1"))
    await provider.send(job(tag="bk-2", receivers=[MARC]))

    ids = await provider.find_by_tag("bk-1")
    assert ids == [first.ids[ANNA]]
    details = await provider.get_outgoing(ids[0])
    assert details["id"] == int(ids[0])
    assert details["receiver"] == ANNA
    assert details["message"] == "Kayak for two: new request"
    assert details["tag"] == "bk-1"
    assert details["credits"] == 1.0
    assert details["creationDatetime"]
    assert await provider.find_by_tag("bk-3") == []


async def test_delivery_shows_in_the_outgoing_record(provider: OvhProvider) -> None:
    sms_id = (await provider.send(job())).ids[ANNA]
    delivered: list[dict[str, Any]] = []

    async def poll() -> None:
        while not delivered:
            details = await provider.get_outgoing(sms_id)
            if details["deliveryReceipt"] == 1:
                delivered.append(details)
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), 2)
    assert delivered[0]["ptt"] == 4
    assert delivered[0]["deliveredAt"]


async def test_incoming_sms_can_be_listed_read_and_deleted(
    provider: OvhProvider, http: httpx.AsyncClient
) -> None:
    created = await http.post("/_control/incoming", json={"sender": ANNA, "message": "OUI"})
    incoming_id = created.json()["id"]
    ovh = provider.client
    path = f"/sms/{SERVICE}/incoming"

    assert await ovh.call("GET", path) == [incoming_id]
    assert await ovh.call("GET", path, params={"sender": MARC}) == []
    reply = await ovh.call("GET", f"{path}/{incoming_id}")
    assert (reply["sender"], reply["message"]) == (ANNA, "OUI")
    assert reply["creationDatetime"]
    await ovh.call("DELETE", f"{path}/{incoming_id}")
    with pytest.raises(PermanentProviderError) as gone:
        await ovh.call("GET", f"{path}/{incoming_id}")
    assert gone.value.status_code == 404


# -- faults -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "uncertain", "status_code", "recorded"),
    [
        ("429", False, 429, False),
        ("500", True, 500, False),
        ("reset", True, None, False),
        ("lost_response", True, None, True),
    ],
)
async def test_queued_fault_maps_to_a_transient_error(
    provider: OvhProvider,
    http: httpx.AsyncClient,
    kind: str,
    uncertain: bool,
    status_code: int | None,
    recorded: bool,
) -> None:
    await set_faults(http, next=[kind], retry_after=2)

    with pytest.raises(TransientProviderError) as failed:
        await provider.send(job())

    assert failed.value.uncertain is uncertain
    assert failed.value.status_code == status_code
    assert failed.value.retry_after == (2.0 if kind == "429" else None)
    assert bool(await provider.find_by_tag("bk-42")) is recorded
    assert (await provider.send(job())).ids  # the queue is used up: back to normal
    stats = (await http.get("/_control/stats")).json()
    assert stats["faults"] == {kind: 1}
    assert stats["duplicates"] == (1 if recorded else 0)


async def test_lost_response_can_end_in_a_500(
    provider: OvhProvider, http: httpx.AsyncClient
) -> None:
    await set_faults(http, next=["lost_response"], lost_as="500")

    with pytest.raises(TransientProviderError) as failed:
        await provider.send(job())

    assert (failed.value.status_code, failed.value.uncertain) == (500, True)
    assert len(await provider.find_by_tag("bk-42")) == 1


async def test_faults_only_hit_jobs_unless_scoped_to_all(
    provider: OvhProvider, http: httpx.AsyncClient
) -> None:
    await set_faults(http, next=["500"])
    assert await provider.find_by_tag("bk-42") == []  # a GET: not faulted, still queued

    await set_faults(http, next=["500"], scope="all")
    with pytest.raises(TransientProviderError):
        await provider.find_by_tag("bk-42")


async def test_outgoing_lag_hides_a_fresh_sms(
    provider: OvhProvider, http: httpx.AsyncClient
) -> None:
    await set_faults(http, outgoing_lag_s=0.2)
    sms_id = (await provider.send(job())).ids[ANNA]

    assert await provider.find_by_tag("bk-42") == []
    with pytest.raises(PermanentProviderError):
        await provider.get_outgoing(sms_id)
    await asyncio.sleep(0.25)
    assert await provider.find_by_tag("bk-42") == [sms_id]


async def test_a_job_is_pending_then_listed_after_the_lag(
    provider: OvhProvider, http: httpx.AsyncClient
) -> None:
    await set_faults(http, pending_s=0.2, outgoing_lag_s=0.2)
    sms_id = (await provider.send(job())).ids[ANNA]

    assert await provider.pending_jobs() == [sms_id]
    assert await provider.pending_job(sms_id) == ANNA
    assert await provider.find_by_tag("bk-42") == []
    await asyncio.sleep(0.25)  # run, not listed yet: in neither list
    assert await provider.pending_jobs() == []
    assert await provider.pending_job(sms_id) is None
    assert await provider.find_by_tag("bk-42") == []
    await asyncio.sleep(0.2)
    assert await provider.find_by_tag("bk-42") == [sms_id]


async def test_answer_faults_reverse_ids_or_leave_a_receiver_out(
    provider: OvhProvider, http: httpx.AsyncClient
) -> None:
    await set_faults(http, id_order="reversed")
    reversed_ids = (await provider.send(job(receivers=[ANNA, MARC]))).ids
    listed = {
        (await provider.outgoing(i)).receiver: i  # type: ignore[union-attr]
        for i in await provider.find_by_tag("bk-42")
    }
    assert reversed_ids == {ANNA: listed[MARC], MARC: listed[ANNA]}

    await set_faults(http, omit_receiver=1.0)
    answer = await provider.send(job(receivers=[ANNA, MARC], tag="bk-43"))
    assert (answer.ids, answer.invalid_receivers) == ({}, [])
    assert len(await provider.find_by_tag("bk-43")) == 2  # both were sent all the same


async def test_ids_start_from_the_clock_by_default() -> None:
    before = int(time.time() * 1000)
    async with reporting_fake() as fake:
        sms_id = int((await fake.provider.send(job(receivers=[ANNA, MARC]))).ids[MARC])

    assert before < sms_id < before + 60_000


async def test_unknown_fault_kind_is_rejected(http: httpx.AsyncClient) -> None:
    response = await http.post("/_control/faults", json={"next": ["meteor"]})

    assert response.status_code == 422


def test_random_faults_are_reproducible_with_a_seed() -> None:
    settings = FaultSettings(rate=0.5, kinds=["429", "500", "reset"], seed=7)
    first, second = FaultPlan(settings), FaultPlan(settings)

    draws = [first.draw(job_call=True) for _ in range(50)]

    assert draws == [second.draw(job_call=True) for _ in range(50)]
    assert 10 < sum(d is not None for d in draws) < 40


async def test_reset_forgets_sms_and_faults(provider: OvhProvider, http: httpx.AsyncClient) -> None:
    await provider.send(job())
    await set_faults(http, next=["500"])

    stats = (await http.post("/_control/reset")).json()

    assert stats["accepted"] == 0
    assert (await http.get("/_control/sent")).json() == []
    assert (await http.get("/_control/faults")).json()["next"] == []
    assert (await provider.send(job())).ids == {ANNA: "100002"}  # ids never repeat


# -- delivery reports ---------------------------------------------------------------


@dataclass
class Reporting:
    """A fake that pushes delivery reports to a recording stand-in of the gateway."""

    provider: OvhProvider
    http: httpx.AsyncClient
    state: FakeOvhState
    calls: list[httpx.URL]


@asynccontextmanager
async def reporting_fake(*, fail: bool = False, **config: Any) -> AsyncIterator[Reporting]:
    calls: list[httpx.URL] = []

    def gateway(request: httpx.Request) -> httpx.Response:
        calls.append(request.url)
        if fail:
            raise httpx.ConnectError("gateway down", request=request)
        return httpx.Response(200, json={"status": "ok"})

    settings = FakeOvhConfig(**{"callback_url": CALLBACK, "dlr_delay": 0.0, **config})
    async with httpx.AsyncClient(transport=httpx.MockTransport(gateway)) as dlr_http:
        state = FakeOvhState(settings, dlr_http=dlr_http)
        transport = httpx.ASGITransport(app=create_fake_ovh(state=state))
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as http:
            yield Reporting(make_provider(http), http, state, calls)
        await state.aclose()


async def test_delivery_report_is_pushed_to_the_callback() -> None:
    async with reporting_fake() as fake:
        sms_id = (await fake.provider.send(job())).ids[ANNA]
        await until(lambda: len(fake.calls) == 1)
        stats = (await fake.http.get("/_control/stats")).json()

    url = fake.calls[0]
    assert str(url).startswith(CALLBACK + "?")
    assert url.params["id"] == sms_id
    assert (url.params["dlr"], url.params["ptt"]) == ("1", "4")
    assert url.params["date"] and url.params["description"]
    assert url.params["receiver"] == ANNA
    assert stats["dlr_pushed"] == 1


async def test_delivery_report_faults() -> None:
    async with reporting_fake(dlr=2, ptt=24) as fake:
        dlr = {"duplicate": True, "out_of_order": True, "before_answer": True}
        await set_faults(fake.http, dlr=dlr)

        sms_id = (await fake.provider.send(job())).ids[ANNA]
        pushed_before_answer = list(fake.calls)

    codes = [(u.params["id"], u.params["dlr"], u.params["ptt"]) for u in pushed_before_answer]
    final, stale = (sms_id, "2", "24"), (sms_id, "4", "3")
    assert codes == [final, final, stale, stale]
    assert pushed_before_answer[2].params["date"] < pushed_before_answer[0].params["date"]


async def test_late_delivery_reports_wait_longer() -> None:
    async with reporting_fake() as fake:
        await set_faults(fake.http, dlr={"late_s": 0.3})
        await fake.provider.send(job())
        await asyncio.sleep(0.1)
        assert fake.calls == []
        await until(lambda: len(fake.calls) == 1)


async def test_failing_callback_is_counted_and_ignored() -> None:
    async with reporting_fake(fail=True) as fake:
        await fake.provider.send(job())
        await until(lambda: fake.state.stats()["dlr_failed"] == 1)

        assert (await fake.provider.send(job())).ids  # still serving


async def test_control_dlr_pushes_a_chosen_report() -> None:
    async with reporting_fake(dlr_delay=60.0) as fake:
        sms_id = int((await fake.provider.send(job())).ids[ANNA])

        response = await fake.http.post("/_control/dlr", json={"id": sms_id, "dlr": 2, "ptt": 8})

    assert response.json()["deliveryReceipt"] == 2
    assert [(u.params["dlr"], u.params["ptt"]) for u in fake.calls] == [("2", "8")]


# -- over real sockets --------------------------------------------------------------


@contextmanager
def served(state: FakeOvhState) -> Iterator[str]:
    """The fake under uvicorn on a free loopback port, in a background thread."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        create_fake_ovh(state=state), log_config=None, timeout_graceful_shutdown=1
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 5
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(5)
        sock.close()


async def test_transport_faults_over_a_real_connection() -> None:
    state = FakeOvhState(CONFIG)
    with served(state) as base:
        async with httpx.AsyncClient(base_url=base, timeout=0.5) as http:
            provider = make_provider(http, base)
            await set_faults(http, next=["reset", "timeout", "lost_response"], timeout_sleep_s=5)
            failures: list[TransientProviderError] = []
            started = time.monotonic()
            for _ in range(3):
                with pytest.raises(TransientProviderError) as failed:
                    await provider.send(job())
                failures.append(failed.value)
            elapsed = time.monotonic() - started
            recorded = await provider.find_by_tag("bk-42")
            stats = (await http.get("/_control/stats")).json()

    reset, timeout, lost = (f.reason for f in failures)
    assert reset == lost == "OVH answer lost: RemoteProtocolError"
    assert timeout == "OVH answer lost: ReadTimeout"
    assert all(f.uncertain for f in failures)
    assert elapsed < 4  # the client's timeout, not the fake's sleep, bounded the wait
    assert len(recorded) == 1  # only the lost response was accepted
    assert stats["faults"] == {"reset": 1, "timeout": 1, "lost_response": 1}
