"""Reservations: the credits of accepted messages, taken from the balance at once.

The conditional update (``balance >= needed``) is what keeps concurrent requests
from spending more than the balance: on PostgreSQL the row lock serialises them,
and SQLite has a single writer. On PostgreSQL a reservation's update runs at
commit (see ``_RESERVE``): callers commit with ``commit_reserved``.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from sqlalchemy import Boolean, Numeric, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from smsgateway.credits import alert
from smsgateway.credits.ledger import entry, known
from smsgateway.credits.problems import amount, insufficient_credits, not_enough
from smsgateway.db import sqlstate, utcnow
from smsgateway.errors import Problem
from smsgateway.models.clients import ApiClient
from smsgateway.models.messages import Message
from smsgateway.models.status import Status


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
        raise not_enough(needed, left)
    balance = known(row[0])
    now = utcnow()
    running = balance + needed
    for message in billable:
        running -= message.credits
        session.add(
            entry(client_id, "reserve", -message.credits, running, None, message.id, now=now)
        )
    await alert.check(session, client_id, balance)


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
        raise not_enough(needed, row.balance)
    expected = Decimal(row.balance) - needed
    if alert.due(expected, row.alert_threshold, row.low_credit_alerted):
        # The crossing, as far as this transaction can tell; a concurrent one that
        # crossed first makes this a no-op, and one missed here is caught by the
        # next reservation (the flag is still down and the balance still low).
        await alert.check(session, client_id, expected)


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
            f"This request needed more credits than the {amount(left)} left.",
            credits_left=float(left or 0),
        ) from None


def refused_at_commit(exc: Exception) -> Problem | None:
    """The 402 of a commit the trigger refused for lack of credits; None for other errors.

    For a commit made without ``commit_reserved`` (which says more): the credits
    it reserved were spent by a concurrent request, and nothing was stored.
    """
    if sqlstate(exc) != INSUFFICIENT_AT_COMMIT:
        return None
    return insufficient_credits(
        "Concurrent requests spent the credits this one needed; nothing was stored."
    )
