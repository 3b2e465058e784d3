"""POST /v1/campaigns: dry runs, real runs, progress, cancelling, credits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import func, select, update

from smsgateway.app import create_app
from smsgateway.campaigns.worker import CampaignWorker
from smsgateway.credits.ledger import ledger_sum
from smsgateway.messages.dispatcher import Dispatcher
from smsgateway.models.campaigns import Campaign, CampaignChunk
from smsgateway.models.clients import ApiClient, CreditEntry
from smsgateway.models.messages import Message
from smsgateway.providers.fake import FakeProvider
from smsgateway.runtime import Runtime
from tests.factories import make_client, make_number_state

PARIS = ZoneInfo("Europe/Paris")
TEXT = "Hello #FIRSTNAME#, -20% on kayaks in #City# until Sunday!"
CSV = (
    "number;firstname;city\n"
    "+33601020304;Anna;Lyon\n"
    "+33611223344;Marc;Nantes\n"
    "+33 1;Bad;Number\n"
    "+33622334455;Opted;Out\n"
    "+33633445566;Sus;Pended\n"
    "+33644556677;Zoë;Saint-Rémy-de-Provence\n"
)
OPTED_OUT, SUSPENDED = "+33622334455", "+33633445566"


@pytest.fixture(autouse=True)
async def blocked_numbers(runtime: Runtime) -> None:
    """The CSV's opted-out and suspended numbers, as STOP and the marketplace left them."""
    await make_number_state(runtime, OPTED_OUT, opted_out=True)
    await make_number_state(runtime, SUSPENDED, suspended=True)


async def _post(
    http: httpx.AsyncClient, auth: dict[str, str], status: int, **body: Any
) -> dict[str, Any]:
    response = await http.post(
        "/v1/campaigns", json={"name": "Spring", "text": TEXT, "csv": CSV, **body}, headers=auth
    )
    assert response.status_code == status, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def _count(runtime: Runtime, model: type) -> int:
    async with runtime.sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def _balance(runtime: Runtime, client_id: str) -> tuple[Decimal | None, Decimal]:
    async with runtime.sessionmaker() as session:
        client = await session.get(ApiClient, client_id)
        assert client is not None
        return client.balance, await ledger_sum(session, client_id)


async def _all_due(runtime: Runtime) -> None:
    """Time passes: every message is due (the pace is 10 a second)."""
    async with runtime.sessionmaker() as session, session.begin():
        await session.execute(
            update(Message).values(due_at=datetime.now(UTC) - timedelta(seconds=1))
        )


def _now_worker(runtime: Runtime) -> CampaignWorker:
    """A worker whose messages are due at once: no marketing hours, the real clock."""
    runtime.settings = runtime.settings.model_copy(
        update={"marketing": runtime.settings.marketing.model_copy(update={"hours_enabled": False})}
    )
    return CampaignWorker(runtime, worker_id="test-campaigns")


# -- dry run ----------------------------------------------------------------------


async def test_a_dry_run_counts_prices_and_stores_nothing(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    shop = await make_client(runtime, quota=100)
    answer = await _post(http, shop.auth, 200, dry_run=True)

    assert answer["dry_run"] is True
    summary = answer["summary"]
    assert (summary["rows"], summary["recipients"], summary["invalid"]) == (6, 3, 1)
    assert summary["skipped"] == {"opted_out": 1, "suspended": 1, "country_not_allowed": 0}
    assert summary["invalid_rows"] == [
        {
            "row": 4,
            "to": "+33 1",
            "reason": "invalid_phone",
            "detail": summary["invalid_rows"][0]["detail"],
        }
    ]
    assert summary["skipped_rows"] == [
        {"row": 5, "to": OPTED_OUT, "reason": "opted_out"},
        {"row": 6, "to": SUSPENDED, "reason": "suspended"},
    ]
    texts = {s["to"]: s for s in summary["sample"]}
    assert texts["+33601020304"]["text"] == "Hello Anna, -20% on kayaks in Lyon until Sunday!"
    assert texts["+33611223344"]["text"] == "Hello Marc, -20% on kayaks in Nantes until Sunday!"
    # "Zoë" is not GSM-7: UCS-2, 70 units a part. 65 fit; with the STOP mention, two parts.
    zoe = texts["+33644556677"]
    assert (zoe["encoding"], len(zoe["text"]), zoe["segments"]) == ("ucs2", 65, 2)
    assert summary["parts"] == {"1": 2, "2": 1}
    assert (summary["segments"], summary["credits"], summary["cost"]) == (4, 4, 0.28)
    assert (summary["columns"], summary["placeholders"]) == (
        ["number", "firstname", "city"],
        ["FIRSTNAME", "City"],
    )

    assert await _count(runtime, Campaign) == 0
    assert await _count(runtime, Message) == 0
    assert await _balance(runtime, shop.id) == (Decimal(100), Decimal(100))


async def test_a_dry_run_from_an_uploaded_file(http: httpx.AsyncClient, runtime: Runtime) -> None:
    shop = await make_client(runtime, quota=100)
    response = await http.post(
        "/v1/campaigns",
        data={"name": "Spring", "text": TEXT, "dry_run": "true"},
        files={"file": ("list.csv", CSV.replace(";", ",").encode(), "text/csv")},
        headers=shop.auth,
    )
    assert response.status_code == 200, response.text
    summary = response.json()["summary"]
    assert (summary["delimiter"], summary["recipients"], summary["credits"]) == (",", 3, 4)


@pytest.mark.parametrize(
    ("body", "slug", "field"),
    [
        ({"csv": "phone;firstname\n+33601020304;Anna\n"}, "csv-missing-number", None),
        ({"text": "Hi #FIRSTNAME# from #SHOP#"}, "unknown-placeholder", None),
        ({"csv": None}, "validation-error", "body.csv"),
        ({"name": ""}, "validation-error", "body.name"),
        ({"tag": "x" * 65}, "validation-error", "body.tag"),
        ({"send_at": "2030-01-01T09:00:00"}, "validation-error", "body.send_at"),
        ({"csv": "number;firstname;city\n+33 1;A;B\n"}, "no-recipients", None),
    ],
)
async def test_bad_campaigns_are_a_422_naming_the_problem(
    http: httpx.AsyncClient, runtime: Runtime, body: dict[str, Any], slug: str, field: str | None
) -> None:
    shop = await make_client(runtime, quota=100)
    problem = await _post(http, shop.auth, 422, **body)
    assert problem["type"].endswith(f"/{slug}")
    if field:
        assert any(e["field"] == field for e in problem["errors"])
    if slug == "unknown-placeholder":
        assert problem["placeholder"] == "SHOP"
    assert await _count(runtime, Campaign) == 0


async def test_other_bodies_are_refused(http: httpx.AsyncClient, runtime: Runtime) -> None:
    shop = await make_client(runtime, quota=100)
    plain = await http.post(
        "/v1/campaigns", content=CSV, headers={**shop.auth, "content-type": "text/csv"}
    )
    assert plain.status_code == 415
    both = await http.post(
        "/v1/campaigns",
        data={"name": "Spring", "text": TEXT, "csv": CSV},
        files={"file": ("list.csv", CSV.encode(), "text/csv")},
        headers=shop.auth,
    )
    assert both.status_code == 422
    assert (await http.post("/v1/campaigns", json={"name": "x"})).status_code == 401


# -- the real run -----------------------------------------------------------------


async def test_a_campaign_holds_its_credits_then_creates_its_messages(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    shop = await make_client(runtime, quota=100)
    accepted = await _post(http, shop.auth, 202, tag="spring-sale")
    assert (accepted["status"], accepted["progress"]["messages"]) == ("creating", 0)
    assert accepted["summary"]["credits"] == 4
    assert await _balance(runtime, shop.id) == (Decimal(96), Decimal(96))

    assert await _now_worker(runtime).run_once() is True
    campaign = (await http.get(f"/v1/campaigns/{accepted['id']}", headers=shop.auth)).json()
    assert campaign["status"] == "sending"
    assert campaign["progress"] == {"rows_done": 6, "messages": 3, "by_status": {"queued": 3}}

    listed = (
        await http.get("/v1/messages", params={"tag": "spring-sale"}, headers=shop.auth)
    ).json()
    by_number = {m["to"]: m for m in listed["items"]}
    assert set(by_number) == {"+33601020304", "+33611223344", "+33644556677"}
    assert by_number["+33611223344"]["text"] == "Hello Marc, -20% on kayaks in Nantes until Sunday!"
    assert {m["kind"] for m in listed["items"]} == {"campaign"}
    assert {m["campaign_id"] for m in listed["items"]} == {accepted["id"]}
    assert by_number["+33644556677"]["segments"] == 2  # the STOP mention counted
    # The hold moved onto the messages: the balance is unchanged, each has its own reservation.
    assert await _balance(runtime, shop.id) == (Decimal(96), Decimal(96))
    async with runtime.sessionmaker() as session:
        reserved = await session.scalars(
            select(CreditEntry.message_id).where(
                CreditEntry.kind == "reserve", CreditEntry.message_id.is_not(None)
            )
        )
        assert set(reserved) == set(by_number[n]["id"] for n in by_number)
        assert await session.scalar(select(func.count()).select_from(CampaignChunk)) == 0


async def test_campaign_messages_go_with_the_stop_mention(
    http: httpx.AsyncClient, runtime: Runtime, dispatcher: Dispatcher, provider: FakeProvider
) -> None:
    shop = await make_client(runtime, quota=100)
    accepted = await _post(http, shop.auth, 202, quiet_hours=False)
    await _now_worker(runtime).run_once()
    await _all_due(runtime)
    await dispatcher.run_once()

    assert sorted(r for job in provider.sent for r in job.receivers) == [
        "+33601020304",
        "+33611223344",
        "+33644556677",
    ]
    assert {job.no_stop_clause for job in provider.sent} == {False}
    assert "Hello Zoë, -20% on kayaks in Saint-Rémy-de-Provence until Sunday!" in {
        j.text for j in provider.sent
    }
    campaign = (await http.get(f"/v1/campaigns/{accepted['id']}", headers=shop.auth)).json()
    assert (campaign["status"], campaign["progress"]["by_status"]) == (
        "completed",
        {"submitted": 3},
    )


async def test_not_enough_credits_for_the_whole_campaign_is_a_402(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    shop = await make_client(runtime, quota=3)
    problem = await _post(http, shop.auth, 402)
    assert (problem["credits_needed"], problem["credits_left"]) == (4, 3)
    assert await _count(runtime, Campaign) == 0
    assert await _count(runtime, CampaignChunk) == 0
    assert await _balance(runtime, shop.id) == (Decimal(3), Decimal(3))


async def test_unlimited_clients_are_not_charged(http: httpx.AsyncClient, runtime: Runtime) -> None:
    shop = await make_client(runtime, quota=None)
    await _post(http, shop.auth, 202)
    await _now_worker(runtime).run_once()
    assert await _count(runtime, Message) == 3
    assert await _balance(runtime, shop.id) == (None, Decimal(0))


async def test_a_number_opted_out_after_acceptance_is_skipped_and_its_credits_return(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    shop = await make_client(runtime, quota=100)
    await _post(http, shop.auth, 202)
    await make_number_state(runtime, "+33611223344", opted_out=True)
    await _now_worker(runtime).run_once()
    assert await _count(runtime, Message) == 2
    assert await _balance(runtime, shop.id) == (Decimal(97), Decimal(97))


# -- following and cancelling -----------------------------------------------------


async def test_cancelling_stops_what_is_not_sent_and_returns_the_credits(
    http: httpx.AsyncClient, runtime: Runtime, dispatcher: Dispatcher
) -> None:
    shop = await make_client(runtime, quota=100)
    accepted = await _post(http, shop.auth, 202)
    await _now_worker(runtime).run_once()
    # One message goes before the cancel.
    async with runtime.sessionmaker() as session, session.begin():
        first = await session.scalar(select(Message.id).where(Message.to == "+33601020304"))
        await session.execute(
            update(Message).where(Message.id == first).values(due_at=datetime.now(UTC))
        )
        await session.execute(
            update(Message)
            .where(Message.id != first)
            .values(due_at=datetime.now(UTC) + timedelta(hours=1))
        )
    assert await dispatcher.run_once() == 1

    response = await http.post(f"/v1/campaigns/{accepted['id']}/cancel", headers=shop.auth)
    assert response.status_code == 200, response.text
    cancelled = response.json()
    assert cancelled["status"] == "cancelled"
    assert cancelled["progress"]["by_status"] == {"cancelled": 2, "submitted": 1}
    assert await _balance(runtime, shop.id) == (Decimal(99), Decimal(99))
    assert await dispatcher.run_once() == 0

    again = await http.post(f"/v1/campaigns/{accepted['id']}/cancel", headers=shop.auth)
    assert again.status_code == 200
    assert await _balance(runtime, shop.id) == (Decimal(99), Decimal(99))


async def test_cancelling_before_the_messages_exist_creates_none(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    shop = await make_client(runtime, quota=100)
    accepted = await _post(http, shop.auth, 202)
    await http.post(f"/v1/campaigns/{accepted['id']}/cancel", headers=shop.auth)
    assert await _now_worker(runtime).run_once() is False
    assert await _count(runtime, Message) == 0
    assert await _count(runtime, CampaignChunk) == 0
    assert await _balance(runtime, shop.id) == (Decimal(100), Decimal(100))


async def test_a_campaign_already_sent_cannot_be_cancelled(
    http: httpx.AsyncClient, runtime: Runtime, dispatcher: Dispatcher
) -> None:
    shop = await make_client(runtime, quota=100)
    accepted = await _post(http, shop.auth, 202, quiet_hours=False)
    await _now_worker(runtime).run_once()
    await _all_due(runtime)
    await dispatcher.run_once()
    response = await http.post(f"/v1/campaigns/{accepted['id']}/cancel", headers=shop.auth)
    assert response.status_code == 409
    assert response.json()["type"].endswith("/campaign-finished")


async def test_campaigns_are_listed_and_private_to_their_client(
    http: httpx.AsyncClient, runtime: Runtime, auth: dict[str, str]
) -> None:
    shop = await make_client(runtime, quota=100)
    accepted = await _post(http, shop.auth, 202)
    listed = (await http.get("/v1/campaigns", headers=shop.auth)).json()["items"]
    assert [c["id"] for c in listed] == [accepted["id"]]
    assert (await http.get("/v1/campaigns", headers=auth)).json()["items"] == []
    hidden = await http.get(f"/v1/campaigns/{accepted['id']}", headers=auth)
    assert hidden.status_code == 404
    assert hidden.json()["type"].endswith("/campaign-not-found")
    assert (
        await http.post(f"/v1/campaigns/{accepted['id']}/cancel", headers=auth)
    ).status_code == 404


# -- when the messages go ---------------------------------------------------------


async def _created_due_times(
    http: httpx.AsyncClient, runtime: Runtime, clock: datetime, **body: Any
) -> dict[str, datetime]:
    shop = await make_client(runtime, quota=100)
    await _post(http, shop.auth, 202, **body)
    await CampaignWorker(runtime, worker_id="w", clock=lambda: clock).run_once()
    async with runtime.sessionmaker() as session:
        rows = (await session.execute(select(Message.to, Message.due_at))).all()
    return {to: due.astimezone(PARIS) for to, due in rows if due is not None}


async def test_messages_are_paced_inside_marketing_hours(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    # Saturday 19:59:59.85 in Paris; at 10 a second the third message is past 20:00.
    saturday = datetime(2026, 11, 21, 19, 59, 59, 850000, tzinfo=PARIS)
    due = await _created_due_times(http, runtime, saturday, quiet_hours=False)
    assert due["+33601020304"] == saturday
    assert due["+33611223344"] == saturday + timedelta(seconds=0.1)
    assert due["+33644556677"] == datetime(2026, 11, 23, 8, 0, tzinfo=PARIS)  # Monday


async def test_quiet_hours_hold_a_new_york_number_but_not_a_paris_one(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    monday_morning = datetime(2026, 11, 23, 9, 0, tzinfo=PARIS)  # 03:00 in New York
    csv = "number;firstname;city\n+33601020304;Anna;Lyon\n+12125551234;Bob;NYC\n"
    due = await _created_due_times(http, runtime, monday_morning, csv=csv)
    assert due["+33601020304"] == monday_morning
    assert due["+12125551234"] == datetime(2026, 11, 23, 8, 0, tzinfo=ZoneInfo("America/New_York"))


async def test_send_at_starts_the_campaign_later(http: httpx.AsyncClient, runtime: Runtime) -> None:
    monday_morning = datetime(2026, 11, 23, 9, 0, tzinfo=PARIS)
    later = monday_morning + timedelta(days=1, hours=2)
    due = await _created_due_times(http, runtime, monday_morning, send_at=later.isoformat())
    assert min(due.values()) == later


async def test_an_upload_over_the_size_limit_is_a_413(runtime: Runtime) -> None:
    runtime.settings = runtime.settings.model_copy(
        update={
            "api": runtime.settings.api.model_copy(
                update={"max_body_bytes_by_path": {"/v1/campaigns": 4096}}
            )
        }
    )
    shop = await make_client(runtime, quota=100)
    app = create_app(runtime=runtime)
    big = CSV + "".join(f"+3361234{n:04d};Name;City\n" for n in range(500))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http,
    ):
        response = await http.post(
            "/v1/campaigns",
            data={"name": "Big", "text": TEXT},
            files={"file": ("big.csv", big.encode(), "text/csv")},
            headers=shop.auth,
        )
    assert response.status_code == 413, response.text
    assert response.json()["type"].endswith("/payload-too-large")
    assert await _count(runtime, Campaign) == 0


async def test_an_unreadable_csv_header_is_a_422_not_a_500(
    http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    # Found by schemathesis: a lone carriage return inside the header line.
    response = await http.post(
        "/v1/campaigns", json={"name": "0", "text": "0", "csv": "\r0"}, headers=auth
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
