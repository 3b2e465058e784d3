"""Credits: reserve when a message is accepted, refund what is never billed.

Every change of a client's balance is one conditional ``UPDATE`` of its row
plus one ``credit_ledger`` row, in the caller's transaction. The conditional
update (``balance >= needed``) is what keeps concurrent requests from
spending more than the balance: on PostgreSQL the row lock serialises them,
and SQLite has a single writer. On PostgreSQL a reservation's update runs at
commit (see ``_RESERVE``): callers commit with ``commit_reserved``.

Refunds go through the unique (message_id, kind) index: a message is refunded
at most once however many times a refund is attempted (a repeated delivery
report, a retried cancel).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from sqlalchemy import Boolean, Numeric, func, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from smsgateway.db import sqlstate, upsert_for, utcnow
from smsgateway.errors import Problem
from smsgateway.models.clients import ApiClient, CreditEntry
from smsgateway.models.messages import Message
from smsgateway.models.status import Status
from smsgateway.webhooks.service import enqueue

log = logging.getLogger(__name__)


async def reserve(session: AsyncSession, client_id: str, messages: Iterable[Message]) -> None:
    """Take the credits of the ``queued`` messages from the client's balance.

    Raises a 402 problem (and changes nothing) when the balance is too low.
    Unlimited clients (no quota) are not charged.
    """
    billable = [m for m in messages if m.status == Status.QUEUED and m.credits > 0]
    needed = sum((m.credits for m in billable), Decimal(0))
    if needed == 0:
        return
    if session.get_bind().dialect.name == "postgresql":
        await _reserve_at_commit(session, client_id, billable, needed)
        return
    # SQLite: one writer at a time, so the debit can be taken now.
    row = (
        await session.execute(
            update(ApiClient)
            .where(
                ApiClient.id == client_id,
                ApiClient.balance.is_not(None),
                ApiClient.balance >= needed,
            )
            .values(balance=ApiClient.balance - needed)
            .returning(ApiClient.balance)
            .execution_options(synchronize_session=False)
        )
    ).first()
    if row is None:
        left = await session.scalar(select(ApiClient.balance).where(ApiClient.id == client_id))
        if left is None:
            return  # unlimited
        raise _insufficient(needed, left)
    balance = _known(row[0])
    now = utcnow()
    running = balance + needed
    for message in billable:
        running -= message.credits
        session.add(
            CreditEntry(
                client_id=client_id,
                kind="reserve",
                delta=-message.credits,
                balance_after=running,
                message_id=message.id,
                created_at=now,
            )
        )
    await check_alert(session, client_id, balance)


# PostgreSQL: the ledger rows now, the debit at commit. The rows are written without
# ``balance_after``; the deferred trigger ``credit_ledger_debit_at_commit``
# (migration 0008) takes each from the balance when the transaction commits, so
# the client's row is locked only while the commit runs on the server. Every event
# of a client used to wait for that lock for as long as the event loop of the
# process holding it took to send its COMMIT (bench/profile.py contention).
#
# The balance read here (no lock) turns away a request it cannot cover at once,
# with nothing written. Concurrent requests may all pass this read; the trigger
# then refuses the commit of whichever would overspend (``commit_reserved``).
_RESERVE = text(
    """
    WITH client AS (
        SELECT balance, alert_threshold, low_credit_alerted
        FROM api_clients WHERE id = :client_id
    ), entries AS (
        INSERT INTO credit_ledger (client_id, kind, delta, balance_after, message_id, created_at)
        SELECT :client_id, 'reserve', -x.credits, NULL, x.message_id, :now
        FROM client,
             unnest(CAST(:ids AS varchar[]), CAST(:credits AS numeric[]))
                 AS x(message_id, credits)
        WHERE client.balance IS NOT NULL AND client.balance >= :needed
    )
    SELECT balance, alert_threshold, low_credit_alerted FROM client
    """
).columns(balance=Numeric(14, 4), alert_threshold=Numeric(14, 4), low_credit_alerted=Boolean)

# The SQLSTATE the trigger fails a commit with when the balance cannot cover it.
INSUFFICIENT_AT_COMMIT = "P0402"


async def _reserve_at_commit(
    session: AsyncSession, client_id: str, billable: list[Message], needed: Decimal
) -> None:
    row = (
        await session.execute(
            _RESERVE,
            {
                "client_id": client_id,
                "needed": needed,
                "now": utcnow(),
                "ids": [m.id for m in billable],
                "credits": [m.credits for m in billable],
            },
        )
    ).first()
    if row is None or row.balance is None:
        return  # unlimited
    if row.balance < needed:
        raise _insufficient(needed, row.balance)
    expected = Decimal(row.balance) - needed
    threshold: Decimal | None = row.alert_threshold
    if threshold is not None and threshold > expected and not row.low_credit_alerted:
        # The crossing, as far as this transaction can tell; a concurrent one that
        # crossed first makes this a no-op, and one missed here is caught by the
        # next reservation (the flag is still down and the balance still low).
        await check_alert(session, client_id, expected)


async def commit_reserved(session: AsyncSession, client_id: str) -> None:
    """Commit a transaction that reserved credits; a 402 problem if they ran out meanwhile.

    On PostgreSQL the debit happens at commit (``_RESERVE``): requests that read
    the same balance concurrently can pass their check and find, at commit, that
    the others took what they counted on. That transaction is rolled back whole,
    so a 402 still stores nothing.
    """
    try:
        await session.commit()
    except DBAPIError as exc:
        if sqlstate(exc) != INSUFFICIENT_AT_COMMIT:
            raise
        await session.rollback()
        left = await session.scalar(select(ApiClient.balance).where(ApiClient.id == client_id))
        await session.rollback()
        raise insufficient_credits(
            f"This request needed more credits than the {_num(left)} left.",
            credits_left=float(left or 0),
        ) from None


def insufficient_credits(
    detail: str, *, credits_needed: float | None = None, credits_left: float | None = None
) -> Problem:
    """The 402 problem of every request that asks for more credits than are left."""
    figures = {"credits_needed": credits_needed, "credits_left": credits_left}
    given: dict[str, Any] = {name: value for name, value in figures.items() if value is not None}
    return Problem(402, "insufficient-credits", "Not enough credits", detail, **given)


def _insufficient(needed: Decimal, left: Decimal, what: str = "This request") -> Problem:
    return insufficient_credits(
        f"{what} needs {_num(needed)} credits and {_num(left)} are left.",
        credits_needed=float(needed),
        credits_left=float(left),
    )


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
    balance = await _credit(session, reserved.client_id, amount)
    if balance is not None:
        await session.execute(
            update(CreditEntry).where(CreditEntry.id == inserted).values(balance_after=balance)
        )
    return True


async def adjust(
    session: AsyncSession,
    client_id: str,
    delta: Decimal,
    *,
    kind: str,
    reason: str,
    actor: str | None = None,
) -> Decimal:
    """Add (or, negative, remove) credits granted to a client; returns the new balance.

    The quota (credits granted) moves with the balance. Removing more than is
    left is a 409 problem.
    """
    if delta < 0:
        row = (
            await session.execute(
                update(ApiClient)
                .where(ApiClient.id == client_id, ApiClient.balance >= -delta)
                .values(
                    balance=ApiClient.balance + delta,
                    quota=ApiClient.quota + delta,
                    updated_at=utcnow(),
                )
                .returning(ApiClient.balance)
                .execution_options(synchronize_session=False)
            )
        ).first()
        if row is None:
            left = await session.scalar(select(ApiClient.balance).where(ApiClient.id == client_id))
            raise Problem(
                409,
                "credits-below-zero",
                "Not enough credits to remove",
                f"Cannot remove {_num(-delta)} credits: {_num(left or 0)} are left.",
            )
        balance = _known(row[0])
    else:
        credited = await _credit(session, client_id, delta, grant=True)
        assert credited is not None
        balance = credited
    session.add(
        CreditEntry(
            client_id=client_id,
            kind=kind,
            delta=delta,
            balance_after=balance,
            reason=reason[:255],
            actor=actor,
            created_at=utcnow(),
        )
    )
    return balance


async def _credit(
    session: AsyncSession, client_id: str, amount: Decimal, *, grant: bool = False
) -> Decimal | None:
    values: dict[str, object] = {"balance": ApiClient.balance + amount}
    if grant:
        values["quota"] = ApiClient.quota + amount
        values["updated_at"] = utcnow()
    row = (
        await session.execute(
            update(ApiClient)
            .where(ApiClient.id == client_id, ApiClient.balance.is_not(None))
            .values(**values)
            .returning(ApiClient.balance, ApiClient.alert_threshold)
            .execution_options(synchronize_session=False)
        )
    ).first()
    if row is None:
        return None
    balance = _known(row[0])
    threshold: Decimal | None = row[1]
    if threshold is not None and balance >= threshold:
        # Back above the threshold: the next crossing alerts again.
        await session.execute(
            update(ApiClient)
            .where(ApiClient.id == client_id, ApiClient.low_credit_alerted.is_(True))
            .values(low_credit_alerted=False)
            .execution_options(synchronize_session=False)
        )
    return balance


async def check_alert(session: AsyncSession, client_id: str, balance: Decimal) -> None:
    """One ``quota.low`` per crossing below the threshold, not one per message."""
    flipped = await session.execute(
        update(ApiClient)
        .where(
            ApiClient.id == client_id,
            ApiClient.alert_threshold.is_not(None),
            ApiClient.alert_threshold > balance,
            ApiClient.low_credit_alerted.is_(False),
        )
        .values(low_credit_alerted=True)
        .execution_options(synchronize_session=False)
    )
    if not flipped.rowcount:  # type: ignore[attr-defined]
        return
    client = await session.get(ApiClient, client_id)
    assert client is not None
    await session.refresh(client)
    log.warning(
        "client %s is low on credits: %s left (threshold %s)",
        client.name,
        _num(balance),
        _num(client.alert_threshold or 0),
    )
    enqueue(
        session,
        client,
        "quota.low",
        {
            "credits_left": float(balance),
            "alert_threshold": float(client.alert_threshold or 0),
            "quota": float(client.quota) if client.quota is not None else None,
        },
    )


async def ledger_sum(session: AsyncSession, client_id: str) -> Decimal:
    total = await session.scalar(
        select(func.coalesce(func.sum(CreditEntry.delta), 0)).where(
            CreditEntry.client_id == client_id
        )
    )
    return Decimal(total or 0)


def _known(value: Decimal | None) -> Decimal:
    """A balance read back from a row that was only updated when not null."""
    assert value is not None
    return value


def _num(value: Decimal | float | int | None) -> str:
    if value is None:
        return "0"
    return f"{Decimal(value).normalize():f}"
