"""/v1/providers/ovh/{token}/dlr: delivery reports move messages forward, once."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text

from smsgateway.messages import delivery as dispatcher_module
from smsgateway.messages.dispatcher import Dispatcher
from smsgateway.messages.reports import apply_pending_reports
from smsgateway.models.callbacks import DeliveryReport
from smsgateway.providers.fake import FakeProvider
from smsgateway.runtime import Runtime
from tests.conftest import CALLBACK_TOKEN, booking_event

DLR_URL = f"/v1/providers/ovh/{CALLBACK_TOKEN}/dlr"
DATE = "2026-11-20 10:15:00"
OFFEROR_PHONE = "+33611223344"


@pytest.fixture
async def message_id(http: httpx.AsyncClient, auth: dict[str, str], dispatcher: Dispatcher) -> str:
    """A booking SMS the FakeProvider accepted as ``fake-1``."""
    response = await http.post("/v1/booking-events", json=booking_event(), headers=auth)
    assert response.status_code == 202, response.text
    await dispatcher.run_once()
    return str(response.json()["messages"][0]["id"])


async def _message(http: httpx.AsyncClient, auth: dict[str, str], message_id: str) -> Any:
    response = await http.get(f"/v1/messages/{message_id}", headers=auth)
    assert response.status_code == 200, response.text
    return response.json()


async def _report(http: httpx.AsyncClient, **params: object) -> httpx.Response:
    query = {"id": "fake-1", "date": DATE, **params}
    return await http.get(DLR_URL, params={k: str(v) for k, v in query.items()})


async def _stored_reports(runtime: Runtime) -> int:
    async with runtime.sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(DeliveryReport)) or 0)


async def test_the_dispatched_message_is_submitted(
    http: httpx.AsyncClient, auth: dict[str, str], message_id: str
) -> None:
    message = await _message(http, auth, message_id)
    assert (message["status"], message["provider_id"]) == ("submitted", "fake-1")
    assert message["delivered_at"] is None


async def test_get_report_marks_the_message_delivered(
    http: httpx.AsyncClient, auth: dict[str, str], message_id: str
) -> None:
    response = await _report(http, dlr=1, ptt=4)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "ok"
    message = await _message(http, auth, message_id)
    assert message["status"] == "delivered"
    assert message["reason"] is None
    assert message["delivered_at"] is not None


async def test_form_encoded_post_is_accepted(
    http: httpx.AsyncClient, auth: dict[str, str], message_id: str
) -> None:
    response = await http.post(
        DLR_URL,
        data={"id": "fake-1", "dlr": "1", "ptt": "4", "date": DATE, "descriptionDlr": "Delivered"},
    )
    assert response.status_code == 200, response.text
    assert (await _message(http, auth, message_id))["status"] == "delivered"


async def test_json_post_is_accepted(
    http: httpx.AsyncClient, auth: dict[str, str], message_id: str
) -> None:
    response = await http.post(DLR_URL, json={"id": "fake-1", "dlr": 1, "ptt": 4, "date": DATE})
    assert response.status_code == 200, response.text
    assert (await _message(http, auth, message_id))["status"] == "delivered"


async def test_query_and_body_can_be_combined(
    http: httpx.AsyncClient, auth: dict[str, str], message_id: str
) -> None:
    response = await http.post(DLR_URL, params={"id": "fake-1"}, data={"dlr": "1", "ptt": "4"})
    assert response.status_code == 200, response.text
    assert (await _message(http, auth, message_id))["status"] == "delivered"


async def test_the_same_report_twice_is_stored_once(
    http: httpx.AsyncClient, auth: dict[str, str], message_id: str, runtime: Runtime
) -> None:
    first = await _report(http, dlr=1, ptt=4)
    second = await _report(http, dlr=1, ptt=4)
    assert first.status_code == second.status_code == 200
    assert first.json()["duplicate"] is False
    assert second.json()["duplicate"] is True
    assert await _stored_reports(runtime) == 1
    assert (await _message(http, auth, message_id))["status"] == "delivered"


async def test_a_replay_over_get_and_post_is_the_same_report(
    http: httpx.AsyncClient, message_id: str, runtime: Runtime
) -> None:
    await _report(http, dlr=1, ptt=4)
    replay = await http.post(DLR_URL, data={"id": "fake-1", "dlr": "1", "ptt": "4", "date": DATE})
    assert replay.status_code == 200
    assert await _stored_reports(runtime) == 1


@pytest.mark.parametrize("late_dlr", [0, 4, 8])
async def test_a_late_pending_report_does_not_undo_delivered(
    http: httpx.AsyncClient, auth: dict[str, str], message_id: str, late_dlr: int
) -> None:
    await _report(http, dlr=1, ptt=4)
    delivered = await _message(http, auth, message_id)
    response = await _report(http, dlr=late_dlr, ptt=1, date="2026-11-20 10:16:00")
    assert response.status_code == 200
    after = await _message(http, auth, message_id)
    assert after == delivered


async def test_a_late_failure_does_not_undo_delivered(
    http: httpx.AsyncClient, auth: dict[str, str], message_id: str
) -> None:
    await _report(http, dlr=1, ptt=4)
    delivered = await _message(http, auth, message_id)
    response = await _report(http, dlr=2, ptt=23, date="2026-11-20 10:16:00")
    assert response.status_code == 200
    assert await _message(http, auth, message_id) == delivered


async def test_an_expired_report_does_not_undo_failed(
    http: httpx.AsyncClient, auth: dict[str, str], message_id: str
) -> None:
    await _report(http, dlr=2, ptt=23)
    response = await _report(http, dlr=2, ptt=8, date="2026-11-20 10:16:00")
    assert response.status_code == 200
    message = await _message(http, auth, message_id)
    assert (message["status"], message["reason"]) == ("failed", "invalid_number")


@pytest.mark.parametrize(
    ("dlr", "ptt", "status", "reason"),
    [
        (2, 23, "failed", "invalid_number"),
        (2, 8, "expired", "expired"),
        (2, 24, "failed", "subscriber_absent"),
        (2, None, "failed", "failed"),
        (2, 999, "failed", "ptt_999"),
    ],
)
async def test_failure_reports_end_the_message_with_a_reason(
    http: httpx.AsyncClient,
    auth: dict[str, str],
    message_id: str,
    dlr: int,
    ptt: int | None,
    status: str,
    reason: str,
) -> None:
    params: dict[str, object] = {"dlr": dlr} if ptt is None else {"dlr": dlr, "ptt": ptt}
    response = await _report(http, **params)
    assert response.status_code == 200, response.text
    message = await _message(http, auth, message_id)
    assert (message["status"], message["reason"]) == (status, reason)
    assert message["delivered_at"] is None


async def test_not_billed_error_is_a_failure(
    http: httpx.AsyncClient, auth: dict[str, str], message_id: str
) -> None:
    response = await _report(http, dlr=16, ptt=23)
    assert response.status_code == 200
    message = await _message(http, auth, message_id)
    assert message["status"] == "failed"
    assert message["reason"].startswith("not_billed")


async def test_buffered_report_leaves_a_submitted_message_submitted(
    http: httpx.AsyncClient, auth: dict[str, str], message_id: str
) -> None:
    before = await _message(http, auth, message_id)
    response = await _report(http, dlr=8, ptt=1)
    assert response.status_code == 200
    assert await _message(http, auth, message_id) == before


async def test_a_pending_report_then_delivered_ends_delivered(
    http: httpx.AsyncClient, auth: dict[str, str], message_id: str, runtime: Runtime
) -> None:
    await _report(http, dlr=8, ptt=1, date="2026-11-20 10:14:00")
    await _report(http, dlr=1, ptt=4)
    assert (await _message(http, auth, message_id))["status"] == "delivered"
    assert await _stored_reports(runtime) == 2


async def test_a_report_before_the_send_answer_is_applied_when_it_arrives(
    http: httpx.AsyncClient,
    auth: dict[str, str],
    dispatcher: Dispatcher,
    runtime: Runtime,
) -> None:
    posted = await http.post("/v1/booking-events", json=booking_event(), headers=auth)
    message_id = posted.json()["messages"][0]["id"]
    early = await _report(http, dlr=1, ptt=4)
    assert early.status_code == 200
    async with runtime.sessionmaker() as session:
        stored = (await session.scalars(select(DeliveryReport))).one()
    assert (stored.applied, stored.message_id) == (False, None)
    assert (await _message(http, auth, message_id))["status"] == "queued"

    await dispatcher.run_once()

    message = await _message(http, auth, message_id)
    assert (message["status"], message["provider_id"]) == ("delivered", "fake-1")
    assert message["delivered_at"] is not None
    async with runtime.sessionmaker() as session:
        stored = (await session.scalars(select(DeliveryReport))).one()
    assert (stored.applied, stored.message_id) == (True, message_id)


async def test_an_unknown_provider_id_is_stored_and_changes_nothing(
    http: httpx.AsyncClient, auth: dict[str, str], message_id: str, runtime: Runtime
) -> None:
    before = await _message(http, auth, message_id)
    response = await _report(http, id="someone-else-42", dlr=1, ptt=4)
    assert response.status_code == 200
    assert await _stored_reports(runtime) == 1
    assert await _message(http, auth, message_id) == before


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_a_wrong_token_is_not_found(
    http: httpx.AsyncClient, message_id: str, runtime: Runtime, method: str
) -> None:
    response = await http.request(
        method, "/v1/providers/ovh/not-the-token/dlr", params={"id": "fake-1", "dlr": "1"}
    )
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 404
    assert CALLBACK_TOKEN not in response.text
    assert await _stored_reports(runtime) == 0


async def test_no_configured_token_means_no_callbacks(
    http: httpx.AsyncClient, auth: dict[str, str], message_id: str, runtime: Runtime
) -> None:
    runtime.settings.api.callback_token = None
    response = await _report(http, dlr=1, ptt=4)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert await _stored_reports(runtime) == 0
    assert (await _message(http, auth, message_id))["status"] == "submitted"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"dlr": "1"}, "id"),
        ({"id": "fake-1"}, "dlr"),
        ({"id": "fake-1", "dlr": ""}, "dlr"),
        ({"id": "fake-1", "dlr": "delivered"}, "dlr"),
        ({"id": "fake-1", "dlr": "1", "ptt": "four"}, "ptt"),
    ],
)
async def test_malformed_reports_get_a_problem_naming_the_parameter(
    http: httpx.AsyncClient, runtime: Runtime, params: dict[str, str], field: str
) -> None:
    response = await http.get(DLR_URL, params=params)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 422
    assert f"'{field}'" in problem["detail"]
    assert [e["field"] for e in problem["errors"]] == [field]
    # The token is a secret: not even the problem's ``instance`` may show it.
    assert CALLBACK_TOKEN not in response.text
    assert await _stored_reports(runtime) == 0


async def test_malformed_json_body_is_a_problem(http: httpx.AsyncClient) -> None:
    response = await http.post(
        DLR_URL, content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert CALLBACK_TOKEN not in response.text


async def test_answers_never_echo_phone_numbers(
    http: httpx.AsyncClient, message_id: str, provider: FakeProvider, runtime: Runtime
) -> None:
    assert provider.sent[0].receivers == [OFFEROR_PHONE]
    extra = {"receiver": OFFEROR_PHONE, "sender": "36111", "descriptionDlr": "Delivered"}
    answers = [
        await _report(http, dlr=1, ptt=4, **extra),
        await _report(http, dlr=1, ptt=4, **extra),
        await _report(http, dlr="x", **extra),
        await http.get("/v1/providers/ovh/wrong/dlr", params=extra),
    ]
    for answer in answers:
        assert OFFEROR_PHONE not in answer.text
        assert OFFEROR_PHONE.lstrip("+") not in answer.text
    # Nor is the receiver kept with the stored report.
    async with runtime.sessionmaker() as session:
        stored = (await session.scalars(select(DeliveryReport))).one()
    assert OFFEROR_PHONE not in str(stored.params)


async def test_long_texts_and_huge_codes_do_not_break_the_callback(
    http: httpx.AsyncClient, auth: dict[str, str], message_id: str, runtime: Runtime
) -> None:
    response = await _report(http, dlr=1, ptt=4, date="9" * 400, descriptionDlr="x" * 500)
    assert response.status_code == 200, response.text
    assert (await _message(http, auth, message_id))["status"] == "delivered"


async def test_huge_codes_are_a_problem(http: httpx.AsyncClient) -> None:
    response = await _report(http, dlr=1, ptt=2**40)
    assert response.status_code == 422


async def test_json_nulls_are_absent_parameters(
    http: httpx.AsyncClient, auth: dict[str, str], message_id: str
) -> None:
    response = await http.post(
        DLR_URL, json={"id": "fake-1", "dlr": 1, "ptt": None, "description": None}
    )
    assert response.status_code == 200, response.text
    assert (await _message(http, auth, message_id))["status"] == "delivered"


async def test_other_methods_are_not_allowed_and_hide_the_token(http: httpx.AsyncClient) -> None:
    response = await http.put(DLR_URL, params={"id": "fake-1", "dlr": "1"})
    assert response.status_code == 405
    assert response.headers["content-type"] == "application/problem+json"
    assert CALLBACK_TOKEN not in response.text


async def _handled_or_waiting(runtime: Runtime, report: asyncio.Task[httpx.Response]) -> None:
    """Until the report's request is done, or (PostgreSQL) waits for a lock the dispatcher holds.

    SQLite has one writer at a time: there the report waits for the commit anyway.
    """
    for _ in range(500):
        if report.done():
            return
        if runtime.is_postgres:
            async with runtime.engine.connect() as connection:
                waiting = await connection.scalar(
                    text("SELECT count(*) FROM pg_locks WHERE NOT granted")
                )
            if waiting:
                return
        elif _ > 15:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the report neither finished nor waited")


async def test_a_report_racing_the_send_answer_is_applied(
    http: httpx.AsyncClient,
    auth: dict[str, str],
    dispatcher: Dispatcher,
    runtime: Runtime,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The report arrives while the dispatcher's transaction storing ``fake-1`` is open.

    Neither side can see the other's uncommitted row: without coordination the
    report would be stored unapplied for good.
    """
    posted = await http.post("/v1/booking-events", json=booking_event(), headers=auth)
    message_id = posted.json()["messages"][0]["id"]
    racing: list[asyncio.Task[httpx.Response]] = []

    async def apply_then_race(session: Any, message: str, provider_id: str) -> int:
        applied = await apply_pending_reports(session, message, provider_id)
        racing.append(asyncio.create_task(_report(http, dlr=1, ptt=4)))
        # The dispatcher commits only once the report is either handled or waiting
        # for it: every run takes the path that loses a report without coordination.
        await _handled_or_waiting(runtime, racing[0])
        return applied

    monkeypatch.setattr(dispatcher_module, "apply_pending_reports", apply_then_race)
    await dispatcher.run_once()
    response = await racing[0]

    assert response.status_code == 200, response.text
    message = await _message(http, auth, message_id)
    assert (message["status"], message["provider_id"]) == ("delivered", "fake-1")
