"""The shared claim: one statement that locks the ready rows, skipping held ones."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import and_, select
from sqlalchemy.dialects import postgresql

from smsgateway.db import utcnow
from smsgateway.models.webhooks import WebhookDelivery
from smsgateway.runtime import Runtime
from smsgateway.workers.claim import claim_rows, default_worker_id
from tests.factories import make_client


def test_the_claim_locks_skipping_held_rows_in_a_materialised_cte() -> None:
    ready = WebhookDelivery.status == "pending"
    statement = claim_rows(
        WebhookDelivery.id,
        ready,
        order_by=WebhookDelivery.next_attempt_at,
        limit=3,
        name="due_rows",
        recheck=WebhookDelivery.attempts < 5,
    ).values(status="sending")
    sql = " ".join(str(statement.compile(dialect=postgresql.dialect())).split())
    assert sql.startswith("WITH due_rows AS MATERIALIZED (SELECT webhook_deliveries.id")
    assert "ORDER BY webhook_deliveries.next_attempt_at LIMIT" in sql
    assert "FOR UPDATE SKIP LOCKED" in sql
    # The re-check is on the UPDATE itself, tested on each locked row.
    assert sql.endswith(
        "WHERE webhook_deliveries.id IN (SELECT due_rows.id FROM due_rows) "
        "AND webhook_deliveries.attempts < %(attempts_1)s::INTEGER"
    )


async def test_a_claim_takes_at_most_its_limit_oldest_first(runtime: Runtime) -> None:
    now = utcnow()
    client_id = (await make_client(runtime, "claims")).id
    async with runtime.sessionmaker() as session, session.begin():
        for n in range(5):
            session.add(
                WebhookDelivery(
                    id=f"wh-{n}",
                    client_id=client_id,
                    url="https://example.test/hook",
                    event_type="message.status",
                    payload={},
                    status="pending",
                    next_attempt_at=now - timedelta(seconds=10 - n),
                )
            )
    ready = and_(WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= now)
    claim = claim_rows(
        WebhookDelivery.id, ready, order_by=WebhookDelivery.next_attempt_at, limit=2, name="c"
    )
    async with runtime.sessionmaker() as session, session.begin():
        taken = (
            await session.scalars(claim.values(status="sending").returning(WebhookDelivery.id))
        ).all()
        left = (
            await session.scalars(
                select(WebhookDelivery.id).where(WebhookDelivery.status == "pending")
            )
        ).all()
    assert sorted(taken) == ["wh-0", "wh-1"]
    assert sorted(left) == ["wh-2", "wh-3", "wh-4"]


def test_worker_ids_are_unique_and_fit_a_lease_owner_column() -> None:
    ids = {default_worker_id() for _ in range(50)}
    assert len(ids) == 50
    assert all(len(worker_id) <= 64 for worker_id in ids)
