"""The message lifecycle: every status change is one move of the state machine's table."""

from __future__ import annotations

import ast
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from smsgateway.messages import lifecycle
from smsgateway.messages.dispatcher import Dispatcher
from smsgateway.models.status import FINAL, TRANSITIONS, Status, can_move, moves_forward, rank
from smsgateway.models.webhooks import WebhookDelivery
from smsgateway.runtime import Runtime
from tests.conftest import CALLBACK_TOKEN
from tests.factories import make_client
from tests.helpers import send_message, stored_message

SRC = Path(__file__).resolve().parents[2] / "src" / "smsgateway"
TO = "+33601020304"


async def _status_events(runtime: Runtime, message_id: str) -> list[tuple[str, int]]:
    """(status, sequence) of the message's ``message.status`` events, in the order written."""
    async with runtime.sessionmaker() as session:
        rows = (
            await session.scalars(
                select(WebhookDelivery)
                .where(WebhookDelivery.event_type == "message.status")
                .order_by(WebhookDelivery.created_at)
            )
        ).all()
    return [
        (row.payload["data"]["status"], row.payload["data"]["sequence"])
        for row in rows
        if row.payload["data"]["message_id"] == message_id
    ]


async def _status_webhooks(runtime: Runtime, message_id: str) -> list[str]:
    return [status for status, _ in await _status_events(runtime, message_id)]


@pytest.fixture
async def hooked(runtime: Runtime) -> dict[str, str]:
    made = await make_client(runtime, "hooked", webhook_url="https://shop.example/hooks")
    return made.auth


def test_the_table_only_moves_forward_but_for_a_retry() -> None:
    steps_back = {
        (current, new)
        for current, nexts in TRANSITIONS.items()
        for new in nexts
        if rank(new) <= rank(current)
    }
    assert steps_back == {(Status.SENDING, Status.QUEUED), (Status.SENDING, Status.SENDING)}
    assert not any(status in TRANSITIONS for status in FINAL)
    assert not can_move(Status.DELIVERED, Status.FAILED)
    assert not moves_forward(Status.SENDING, Status.QUEUED)


async def test_a_move_the_table_does_not_hold_raises(runtime: Runtime) -> None:
    async with runtime.sessionmaker() as session, session.begin():
        with pytest.raises(ValueError, match="cannot move"):
            await lifecycle.finish_attempt(
                session, "m-1", worker="w", to=Status.CANCELLED, values={}
            )


async def test_a_report_never_moves_a_final_message_back(
    http: httpx.AsyncClient, hooked: dict[str, str], runtime: Runtime
) -> None:
    message = await send_message(http, hooked, to=TO, text="Hello")
    async with runtime.sessionmaker() as session, session.begin():
        assert await lifecycle.cancel_queued(session, message["id"], reason="cancelled")
    async with runtime.sessionmaker() as session, session.begin():
        moved = await lifecycle.apply_report(session, message["id"], Status.DELIVERED, {})
    assert moved is False
    assert (await stored_message(runtime, message["id"])).status == Status.CANCELLED
    assert await _status_webhooks(runtime, message["id"]) == ["cancelled"]


async def test_each_transition_is_reported_once(
    http: httpx.AsyncClient, hooked: dict[str, str], runtime: Runtime, dispatcher: Dispatcher
) -> None:
    message = await send_message(http, hooked, to=TO, text="Hello")
    await dispatcher.run_once()
    for _ in range(2):  # the same report twice, as two different deliveries could
        async with runtime.sessionmaker() as session, session.begin():
            await lifecycle.apply_report(session, message["id"], Status.DELIVERED, {})
    assert await _status_webhooks(runtime, message["id"]) == ["submitted", "delivered"]


async def test_a_second_cancel_changes_nothing_and_says_nothing(
    http: httpx.AsyncClient, hooked: dict[str, str], runtime: Runtime
) -> None:
    message = await send_message(http, hooked, to=TO, text="Hello")
    async with runtime.sessionmaker() as session, session.begin():
        first = await lifecycle.cancel_queued(session, message["id"], reason="cancelled")
        second = await lifecycle.cancel_queued(session, message["id"], reason="cancelled")
    assert (first, second) == (True, False)
    assert await _status_webhooks(runtime, message["id"]) == ["cancelled"]
    async with runtime.sessionmaker() as session:
        deliveries = await session.scalar(select(func.count()).select_from(WebhookDelivery))
    assert deliveries == 1


async def test_each_status_told_carries_the_next_sequence(
    http: httpx.AsyncClient, hooked: dict[str, str], runtime: Runtime, dispatcher: Dispatcher
) -> None:
    message = await send_message(http, hooked, to=TO, text="Hello")
    await dispatcher.run_once()
    async with runtime.sessionmaker() as session, session.begin():
        await lifecycle.apply_report(session, message["id"], Status.DELIVERED, {})
    assert await _status_events(runtime, message["id"]) == [("submitted", 1), ("delivered", 2)]


async def test_a_report_before_the_send_answer_still_follows_submitted(
    http: httpx.AsyncClient, hooked: dict[str, str], runtime: Runtime, dispatcher: Dispatcher
) -> None:
    message = await send_message(http, hooked, to=TO, text="Hello")
    early = await http.get(
        f"/v1/providers/ovh/{CALLBACK_TOKEN}/dlr", params={"id": "fake-1", "dlr": "1"}
    )
    assert early.status_code == 200
    await dispatcher.run_once()  # stores fake-1, then applies the report that waited
    assert (await stored_message(runtime, message["id"])).status == Status.DELIVERED
    assert await _status_events(runtime, message["id"]) == [("submitted", 1), ("delivered", 2)]


def _updated_table(call: ast.Call) -> str | None:
    """``X`` in ``update(X)…values(…)`` or ``claim_rows(X.id, …)…values(…)``."""
    node: ast.expr = call.func
    while isinstance(node, ast.Attribute | ast.Call):
        if isinstance(node, ast.Call):
            name = node.func.id if isinstance(node.func, ast.Name) else None
            if name in ("update", "claim_rows") and node.args:
                target = node.args[0]
                if isinstance(target, ast.Attribute):  # claim_rows(Message.id, …)
                    target = target.value
                return target.id if isinstance(target, ast.Name) else None
            node = node.func
        else:
            node = node.value
    return None


def _status_writers() -> set[str]:
    writers: set[str] = set()
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "values"
            ):
                continue
            # ``status=…``, or ``**values`` that may hold it
            writes_status = any(k.arg in ("status", None) for k in node.keywords)
            if writes_status and _updated_table(node) == "Message":
                writers.add(path.relative_to(SRC).as_posix())
    return writers


def test_only_the_lifecycle_writes_a_message_status() -> None:
    assert _status_writers() == {"messages/lifecycle.py"}
