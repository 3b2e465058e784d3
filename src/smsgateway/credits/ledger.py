"""The ledger and the balance it adds up to: credits given, granted, removed.

Each change of a balance writes ``credit_ledger`` rows whose deltas add up to
it. Taking credits for messages is ``reservations`` (and ``holds`` for a
campaign); giving them back is ``credit`` here, which also re-arms the
low-credit alert when the balance is back above the threshold.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from smsgateway.credits import alert
from smsgateway.credits.problems import amount
from smsgateway.db import utcnow
from smsgateway.errors import Problem
from smsgateway.models.clients import ApiClient, CreditEntry


def entry(
    client_id: str,
    kind: str,
    delta: Decimal,
    balance_after: Decimal | None,
    reason: str | None,
    message_id: str | None = None,
    *,
    actor: str | None = None,
    now: datetime | None = None,
) -> CreditEntry:
    """One ledger row (``kind``: ``grant``, ``adjust``, ``reserve`` or ``refund``)."""
    return CreditEntry(
        client_id=client_id,
        kind=kind,
        delta=delta,
        balance_after=balance_after,
        message_id=message_id,
        reason=reason,
        actor=actor,
        created_at=now or utcnow(),
    )


async def credit(
    session: AsyncSession, client_id: str, added: Decimal, *, grant: bool = False
) -> Decimal | None:
    """Add ``added`` to the balance and return it; None for an unlimited client.

    ``grant``: credits given to the client, so its quota grows with them (a
    refund only gives back what was taken). Back at or above the alert
    threshold, the alert is re-armed. The caller writes the ledger row.
    """
    values: dict[str, object] = {"balance": ApiClient.balance + added}
    if grant:
        values["quota"] = ApiClient.quota + added
        values["updated_at"] = utcnow()
    row = (
        await session.execute(
            update(ApiClient)
            .where(ApiClient.id == client_id, ApiClient.balance.is_not(None))
            .values(**values)
            .returning(ApiClient.balance, ApiClient.alert_threshold, ApiClient.low_credit_alerted)
            .execution_options(synchronize_session=False)
        )
    ).first()
    if row is None:
        return None
    balance = known(row[0])
    await alert.rearm(session, client_id, balance=balance, threshold=row[1], alerted=row[2])
    return balance


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
        balance = await _remove(session, client_id, -delta)
    else:
        credited = await credit(session, client_id, delta, grant=True)
        assert credited is not None
        balance = credited
    session.add(entry(client_id, kind, delta, balance, reason[:255], actor=actor))
    return balance


async def _remove(session: AsyncSession, client_id: str, taken: Decimal) -> Decimal:
    row = (
        await session.execute(
            update(ApiClient)
            .where(ApiClient.id == client_id, ApiClient.balance >= taken)
            .values(
                balance=ApiClient.balance - taken,
                quota=ApiClient.quota - taken,
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
            f"Cannot remove {amount(taken)} credits: {amount(left or 0)} are left.",
        )
    return known(row[0])


def open_account(client_id: str, quota: Decimal, *, actor: str | None) -> CreditEntry:
    """The first ledger row of a new client with a quota: the quota, granted."""
    return entry(client_id, "grant", quota, quota, "opening quota", actor=actor)


async def change_credits(
    session: AsyncSession, client: ApiClient, delta: Decimal, *, reason: str, actor: str | None
) -> None:
    """Add or remove credits of a (locked) client: an ``adjust`` row with the reason.

    Removing more than is left is a 409 problem, and so is changing the
    credits of an unlimited client (give it a quota first). The alert follows
    the new balance (``alert.sync``).
    """
    if client.balance is None:
        raise Problem(
            409,
            "client-unlimited",
            "Client has no quota",
            "This client is unlimited: set a quota before adding or removing credits.",
        )
    await adjust(session, client.id, delta, kind="adjust", reason=reason, actor=actor)
    await alert.sync(session, client.id)


async def set_quota(
    session: AsyncSession, client: ApiClient, quota: Decimal | None, *, actor: str | None
) -> None:
    """Give a (locked) client a new quota, keeping the ledger summing to the balance.

    - a number to another: the balance moves by the difference (an ``adjust``
      row; a ``409`` when that would take it below zero);
    - a number to unlimited: an ``adjust`` row empties the ledger, and the
      balance becomes null (unlimited clients are not charged);
    - unlimited to a number: a ``grant`` row brings the ledger to the quota,
      which is also the balance.

    The caller then brings the alert in line (``alert.sync``).
    """
    old = client.quota
    if old is None and quota is None:
        return
    if old is not None and quota is not None:
        if quota != old:
            reason = f"quota changed from {amount(old)} to {amount(quota)}"
            await adjust(session, client.id, quota - old, kind="adjust", reason=reason, actor=actor)
        return
    owed = await ledger_sum(session, client.id)
    now = utcnow()
    if quota is None:
        kind, delta, reason = "adjust", -owed, "quota removed: unlimited"
    else:
        kind, delta, reason = "grant", quota - owed, f"quota set to {amount(quota)}, was unlimited"
    if delta:
        session.add(entry(client.id, kind, delta, quota, reason, actor=actor, now=now))
    await session.execute(
        update(ApiClient)
        .where(ApiClient.id == client.id)
        .values(quota=quota, balance=quota, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    await session.flush()


async def ledger_sum(session: AsyncSession, client_id: str) -> Decimal:
    """The sum of the client's ledger deltas: its balance (0 for an unlimited client)."""
    total = await session.scalar(
        select(func.coalesce(func.sum(CreditEntry.delta), 0)).where(
            CreditEntry.client_id == client_id
        )
    )
    return Decimal(total or 0)


async def ledger_page(
    session: AsyncSession, client_id: str, *, limit: int, cursor: str | None
) -> tuple[list[CreditEntry], str | None]:
    """The client's ledger, newest first, ``limit`` rows after ``cursor``."""
    query = select(CreditEntry).where(CreditEntry.client_id == client_id)
    if cursor:
        if not cursor.isdigit():
            raise Problem(
                400, "invalid-cursor", "Invalid cursor", "Use the next_cursor of a previous page."
            )
        query = query.where(CreditEntry.id < int(cursor))
    rows = list(await session.scalars(query.order_by(CreditEntry.id.desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (str(rows[-1].id) if more and rows else None)


def known(value: Decimal | None) -> Decimal:
    """A balance read back from a row that was only updated when not null."""
    assert value is not None
    return value
