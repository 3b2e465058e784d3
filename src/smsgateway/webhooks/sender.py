"""Delivering the webhook outbox: claim due rows, POST them signed, retry with backoff.

Delivery is at least once: a receiver may see an event again (after a
timeout, or a crash between its 2xx and our commit) and should deduplicate
on the event ``id``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import and_, or_, select, update

from smsgateway.db import utcnow
from smsgateway.models.clients import ApiClient
from smsgateway.models.webhooks import WebhookDelivery
from smsgateway.runtime import Runtime
from smsgateway.webhooks.signing import SIGNATURE_HEADER, signature_header
from smsgateway.workers.claim import claim_rows
from smsgateway.workers.loop import SupervisedLoop, error_backoff
from smsgateway.workers.retry import RetryPolicy

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Due:
    id: str
    url: str
    event_type: str
    payload: dict[str, Any]
    attempts: int
    secret: str


class WebhookSender:
    def __init__(self, runtime: Runtime, http: httpx.AsyncClient, worker_id: str) -> None:
        self.runtime = runtime
        self.http = http
        self.worker_id = worker_id
        settings = runtime.settings
        self.retry = RetryPolicy(
            base_seconds=settings.webhooks.retry_base_seconds,
            max_seconds=settings.webhooks.retry_max_seconds,
            max_attempts=settings.webhooks.max_attempts,
        )
        self.loop = SupervisedLoop(
            "webhook sender", self._pass, backoff=error_backoff(settings.worker.poll_seconds)
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop`` is set; the deliveries under way finish first."""
        await self.loop.run(stop)

    async def _pass(self) -> float:
        # Straight on while there is a backlog; otherwise poll.
        return 0.0 if await self.run_once() else self.runtime.settings.worker.poll_seconds

    async def run_once(self, limit: int = 20) -> int:
        """Claim and deliver up to ``limit`` due webhooks. Returns how many."""
        due = await self._claim(limit)
        await asyncio.gather(*(self._deliver(item) for item in due))
        return len(due)

    async def _claim(self, limit: int) -> list[_Due]:
        now = utcnow()
        lease = timedelta(seconds=self.runtime.settings.worker.lease_seconds)
        ready = or_(
            and_(WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= now),
            and_(WebhookDelivery.status == "sending", WebhookDelivery.lease_until < now),
        )
        claim = claim_rows(
            WebhookDelivery.id,
            ready,
            order_by=WebhookDelivery.next_attempt_at,
            limit=limit,
            name="due_webhooks",
            recheck=ready,
        )
        async with self.runtime.sessionmaker() as session, session.begin():
            rows = (
                await session.execute(
                    claim.values(
                        status="sending",
                        lease_owner=self.worker_id,
                        lease_until=now + lease,
                        attempts=WebhookDelivery.attempts + 1,
                    ).returning(
                        WebhookDelivery.id,
                        WebhookDelivery.url,
                        WebhookDelivery.event_type,
                        WebhookDelivery.payload,
                        WebhookDelivery.attempts,
                        WebhookDelivery.client_id,
                    )
                )
            ).all()
            if not rows:
                return []
            secrets = dict(
                (
                    await session.execute(
                        select(ApiClient.id, ApiClient.webhook_secret).where(
                            ApiClient.id.in_({row.client_id for row in rows})
                        )
                    )
                ).all()
            )
        return [
            _Due(
                row.id,
                row.url,
                row.event_type,
                row.payload,
                row.attempts,
                secrets.get(row.client_id) or "",
            )
            for row in rows
        ]

    async def _deliver(self, item: _Due) -> None:
        body = json.dumps(item.payload, separators=(",", ":"), sort_keys=True).encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "smsgateway-webhooks",
            "Smsgw-Event-Id": item.id,
            "Smsgw-Event-Type": item.event_type,
            SIGNATURE_HEADER: signature_header(item.secret, int(utcnow().timestamp()), body),
        }
        status_code: int | None = None
        error: str | None = None
        try:
            response = await self.http.post(
                item.url,
                content=body,
                headers=headers,
                timeout=self.runtime.settings.webhooks.timeout_seconds,
            )
            status_code = response.status_code
            if not 200 <= status_code < 300:
                error = f"HTTP {status_code}"
        except httpx.HTTPError as exc:
            error = type(exc).__name__
        now = utcnow()
        values: dict[str, Any] = {
            "lease_owner": None,
            "lease_until": None,
            "last_status_code": status_code,
            "last_error": error,
        }
        if error is None:
            values.update(status="delivered", delivered_at=now, next_attempt_at=None)
        elif self.retry.exhausted(item.attempts):
            values.update(status="failed", next_attempt_at=None)
            log.warning("webhook %s failed for good after %d attempts", item.id, item.attempts)
        else:
            delay = self.retry.delay(item.attempts)
            values.update(status="pending", next_attempt_at=now + timedelta(seconds=delay))
        async with self.runtime.sessionmaker() as session, session.begin():
            await session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id == item.id, WebhookDelivery.lease_owner == self.worker_id)
                .values(**values)
                .execution_options(synchronize_session=False)
            )
