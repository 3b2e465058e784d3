"""Refunds: what a message reserved comes back once, when it is never billed.

Refunds go through the unique (message_id, kind) index: a message is refunded
at most once however many times a refund is attempted (a repeated delivery
report, a retried cancel).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from sqlalchemy import and_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from smsgateway.credits.ledger import credit, entry
from smsgateway.db import upsert_for, utcnow
from smsgateway.models.clients import CreditEntry


async def refund(session: AsyncSession, message_id: str, reason: str) -> bool:
    """Give back what ``message_id`` reserved, once. True if credits came back now."""
    reserved = await session.scalar(
        select(CreditEntry).where(
            CreditEntry.message_id == message_id, CreditEntry.kind == "reserve"
        )
    )
    if reserved is None:
        return False
    amount = -reserved.delta
    insert = upsert_for(session)
    inserted = await session.scalar(
        insert(CreditEntry)
        .values(
            client_id=reserved.client_id,
            kind="refund",
            delta=amount,
            message_id=message_id,
            reason=reason[:255],
            created_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["message_id", "kind"])
        .returning(CreditEntry.id)
    )
    if inserted is None:
        return False
    balance = await credit(session, reserved.client_id, amount)
    if balance is not None:
        await session.execute(
            update(CreditEntry).where(CreditEntry.id == inserted).values(balance_after=balance)
        )
    return True


async def refund_cancelled(
    session: AsyncSession, client_id: str, message_ids: Sequence[str], reason: str
) -> None:
    """Refund many just-cancelled messages at once (one ``refund`` row each).

    The caller moved them from ``queued`` to ``cancelled`` in this transaction,
    so nothing else can be refunding them; the unique (message_id, kind) index
    would still refuse a second refund row.
    """
    if not message_ids:
        return
    reserved = (
        await session.execute(
            select(CreditEntry.message_id, CreditEntry.delta).where(
                and_(CreditEntry.message_id.in_(message_ids), CreditEntry.kind == "reserve")
            )
        )
    ).all()
    total = sum((-delta for _, delta in reserved), Decimal(0))
    if total == 0:
        return
    balance = await credit(session, client_id, total)
    if balance is None:
        return
    running = balance - total
    entries = []
    for message_id, delta in reserved:
        running -= delta
        entries.append(entry(client_id, "refund", -delta, running, reason, message_id))
    session.add_all(entries)
