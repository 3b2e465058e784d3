"""Gauges read from the database at scrape time, cached so scrapes cannot hammer it.

Every API replica reads the same rows, so these series are identical across replicas:
alert on ``max`` of them, not ``sum``. Each query runs on an index or on a small table:

* ``messages``: messages created in the last ``window`` by client and status
  (``ix_messages_client_created``);
* the queue: ``queued`` messages due now, their oldest ``due_at``, ``queued`` ones due
  later and ``sending`` ones (``ix_messages_status_due_at``);
* ``webhook_deliveries`` still ``pending``, by client (``ix_webhook_deliveries_status_due``);
* credits left, quota and alert threshold of each client with a quota (``api_clients``);
* the provider circuit as the workers last reported it (``provider_state``).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from smsgateway.db import utcnow

# Every table, not only the three read here: any process building a runtime then has a
# complete mapper registry, whichever routers it mounts.
from smsgateway.models import ApiClient, Message, ProviderState, WebhookDelivery
from smsgateway.models.status import Status


@dataclass(frozen=True, slots=True)
class ClientCredits:
    credits_left: float
    quota: float | None
    alert_threshold: float | None


@dataclass(frozen=True, slots=True)
class DatabaseSnapshot:
    """What the database said at ``taken_at`` (monotonic seconds)."""

    taken_at: float
    query_seconds: float
    messages: dict[tuple[str, str], int] = field(default_factory=dict)  # (client, status)
    queue_due: int = 0
    queue_oldest_due_age: float = 0.0
    queue_scheduled: int = 0
    sending: int = 0
    webhooks_pending: dict[str, int] = field(default_factory=dict)  # client -> count
    credits: dict[str, ClientCredits] = field(default_factory=dict)  # client -> credits
    circuits: dict[str, tuple[str, int]] = field(default_factory=dict)  # provider -> state


async def read_snapshot(session: AsyncSession, *, window: timedelta) -> DatabaseSnapshot:
    """Run the gauge queries once (read only, one transaction)."""
    started = time.monotonic()
    now = utcnow()
    # Labelled by client id, never by name: a scrape must not list the tenants.
    messages = await _recent_messages(session, now - window)
    queue_due, oldest, scheduled, sending = await _queue(session, now)
    webhooks = await _pending_webhooks(session)
    credits = await _credits(session)
    circuits = {
        row.provider: (row.circuit, row.failures)
        for row in (
            await session.execute(
                select(ProviderState.provider, ProviderState.circuit, ProviderState.failures)
            )
        ).all()
    }
    return DatabaseSnapshot(
        taken_at=time.monotonic(),
        query_seconds=time.monotonic() - started,
        messages=messages,
        queue_due=queue_due,
        queue_oldest_due_age=_age(now, oldest),
        queue_scheduled=scheduled,
        sending=sending,
        webhooks_pending=webhooks,
        credits=credits,
        circuits=circuits,
    )


async def _recent_messages(session: AsyncSession, since: datetime) -> dict[tuple[str, str], int]:
    """Messages created since ``since``, by (client id, status)."""
    messages: dict[tuple[str, str], int] = {}
    recent = await session.execute(
        select(Message.client_id, Message.status, func.count())
        .where(Message.created_at >= since)
        .group_by(Message.client_id, Message.status)
    )
    for client_id, status, count in recent.all():
        messages[(client_id, status)] = count
    return messages


async def _queue(session: AsyncSession, now: datetime) -> tuple[int, datetime | None, int, int]:
    """Queued messages due now and the oldest ``due_at``; queued later; sending."""
    due = (
        await session.execute(
            select(func.count(), func.min(Message.due_at)).where(
                Message.status == Status.QUEUED.value, Message.due_at <= now
            )
        )
    ).one()
    scheduled = await session.scalar(
        select(func.count()).where(Message.status == Status.QUEUED.value, Message.due_at > now)
    )
    sending = await session.scalar(
        select(func.count()).where(Message.status == Status.SENDING.value)
    )
    return int(due[0]), due[1], int(scheduled or 0), int(sending or 0)


async def _pending_webhooks(session: AsyncSession) -> dict[str, int]:
    """Webhook deliveries still pending, by client id."""
    webhooks: dict[str, int] = {}
    pending = await session.execute(
        select(WebhookDelivery.client_id, func.count())
        .where(WebhookDelivery.status == "pending")
        .group_by(WebhookDelivery.client_id)
    )
    for client_id, count in pending.all():
        webhooks[client_id] = count
    return webhooks


async def _credits(session: AsyncSession) -> dict[str, ClientCredits]:
    """Credits of each enabled client with a quota, by client id."""
    credits: dict[str, ClientCredits] = {}
    limited = await session.execute(
        select(ApiClient.id, ApiClient.balance, ApiClient.quota, ApiClient.alert_threshold).where(
            ApiClient.balance.is_not(None), ApiClient.disabled_at.is_(None)
        )
    )
    for client_id, balance, quota, threshold in limited.all():
        credits[client_id] = ClientCredits(
            credits_left=float(balance or 0),
            quota=float(quota) if quota is not None else None,
            alert_threshold=float(threshold) if threshold is not None else None,
        )
    return credits


def _age(now: datetime, oldest: datetime | None) -> float:
    return max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0


class SnapshotCache:
    """At most one set of queries per ``ttl`` seconds, however many scrapes arrive.

    Concurrent scrapes wait for the one refresh in flight instead of starting their own.
    A failed refresh leaves ``None``: the gauges are then left out (and
    ``smsgw_metrics_database_up`` is 0) rather than shown stale.
    """

    def __init__(self, ttl_seconds: float, window: timedelta) -> None:
        self.ttl = ttl_seconds
        self.window = window
        self.snapshot: DatabaseSnapshot | None = None
        self.failed_at: float | None = None
        self._lock = asyncio.Lock()

    def _fresh(self) -> bool:
        now = time.monotonic()
        if self.failed_at is not None and now - self.failed_at < self.ttl:
            return True
        return self.snapshot is not None and now - self.snapshot.taken_at < self.ttl

    async def get(self, sessionmaker: async_sessionmaker[AsyncSession]) -> DatabaseSnapshot | None:
        if self._fresh():
            return self.snapshot
        async with self._lock:
            if self._fresh():
                return self.snapshot
            try:
                async with sessionmaker() as session:
                    self.snapshot = await read_snapshot(session, window=self.window)
                self.failed_at = None
            except Exception:
                self.snapshot, self.failed_at = None, time.monotonic()
                raise
            return self.snapshot
