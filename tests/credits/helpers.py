"""What the credit tests share: a client with a quota, its balance and ledger, row counts."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import func, select

from smsgateway.clients.service import create_client
from smsgateway.credits.ledger import ledger_sum
from smsgateway.models.clients import ApiClient
from smsgateway.runtime import Runtime


async def client_with(
    runtime: Runtime, quota: str | None, threshold: str | None = None, name: str = "shop"
) -> tuple[str, dict[str, str]]:
    """A client with ``quota`` (None: unlimited) and a webhook URL: its id and auth headers."""
    async with runtime.sessionmaker() as session, session.begin():
        created = await create_client(
            session,
            name=name,
            quota=Decimal(quota) if quota is not None else None,
            alert_threshold=Decimal(threshold) if threshold is not None else None,
            webhook_url="https://marketplace.test/hooks",
        )
    return created.client.id, {"Authorization": f"Bearer {created.api_key}"}


async def balance_and_ledger(runtime: Runtime, client_id: str) -> tuple[Decimal | None, Decimal]:
    """The client's balance and the sum of its ledger (they must agree)."""
    async with runtime.sessionmaker() as session:
        client = await session.get(ApiClient, client_id)
        assert client is not None
        return client.balance, await ledger_sum(session, client_id)


async def count_rows(runtime: Runtime, model: type, **where: object) -> int:
    """Rows of ``model`` whose columns equal ``where``."""
    async with runtime.sessionmaker() as session:
        query = select(func.count()).select_from(model)
        for column, value in where.items():
            query = query.where(getattr(model, column) == value)
        return int(await session.scalar(query) or 0)
