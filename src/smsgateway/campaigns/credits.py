"""A campaign's credits: taken whole up front, then handed to its messages batch by batch.

The ledger keeps its rule (the deltas add up to the balance) with the usual
kinds:

* accepting the campaign is one ``reserve`` row without a message (the hold),
  taken with the same conditional update as any reservation, so it never
  overspends and a short balance is a ``402`` with nothing stored;
* each batch of messages moves its share of the hold onto the messages: one
  ``refund`` row for the campaign and one ``reserve`` row per message. The
  balance does not move; each message can now be refunded on its own, once,
  like any other (cancel, failure before sending, "not billed" report);
* what is left of the hold when the last row is done, or when the campaign is
  cancelled, comes back as one ``refund`` row.

Unlimited clients are not charged, here as elsewhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from sqlalchemy import and_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from smsgateway.clients.credits import check_alert, insufficient_credits
from smsgateway.db import utcnow
from smsgateway.models.campaigns import Campaign
from smsgateway.models.clients import ApiClient, CreditEntry
from smsgateway.models.messages import Message
from smsgateway.models.status import Status


async def hold(session: AsyncSession, client_id: str, campaign_id: str, amount: Decimal) -> bool:
    """Take ``amount`` from the balance for the campaign. False: an unlimited client.

    A balance too low is a 402 problem and changes nothing.
    """
    left = await session.scalar(select(ApiClient.balance).where(ApiClient.id == client_id))
    if left is None:
        return False
    if amount == 0:
        return True
    balance = await session.scalar(
        update(ApiClient)
        .where(ApiClient.id == client_id, ApiClient.balance >= amount)
        .values(balance=ApiClient.balance - amount)
        .returning(ApiClient.balance)
        .execution_options(synchronize_session=False)
    )
    if balance is None:
        raise insufficient_credits(
            f"This campaign needs {amount.normalize():f} credits and"
            f" {Decimal(left).normalize():f} are left.",
            credits_needed=float(amount),
            credits_left=float(left),
        )
    session.add(
        _entry(client_id, "reserve", -amount, balance, f"campaign {campaign_id}: held for it")
    )
    await check_alert(session, client_id, balance)
    return True


async def hand_to_messages(
    session: AsyncSession, campaign: Campaign, messages: Sequence[Message]
) -> None:
    """Give each queued message its share of the hold, as its own reservation.

    A message the hold cannot cover any more (only if prices went up since
    the campaign was accepted) is turned ``rejected`` (``insufficient_credits``)
    rather than charged beyond what the client agreed to.
    """
    if not campaign.charged:
        return
    left = campaign.credits_held
    for message in messages:
        if message.status != Status.QUEUED:
            continue
        if message.credits <= left:
            left -= message.credits
            continue
        message.status, message.reason = Status.REJECTED.value, "insufficient_credits"
        message.credits, message.cost = Decimal(0), Decimal(0)
        message.due_at, message.valid_until, message.final_at = None, None, message.created_at
    billable = [m for m in messages if m.status == Status.QUEUED and m.credits > 0]
    moved = sum((m.credits for m in billable), Decimal(0))
    if moved == 0:
        return
    # Locks the client's row and reads the balance, which this does not change.
    balance = await session.scalar(
        update(ApiClient)
        .where(ApiClient.id == campaign.client_id)
        .values(balance=ApiClient.balance)
        .returning(ApiClient.balance)
        .execution_options(synchronize_session=False)
    )
    running = (balance or Decimal(0)) + moved
    why = f"campaign {campaign.id}: moved to {len(billable)} messages"
    entries = [_entry(campaign.client_id, "refund", moved, running, why)]
    for message in billable:
        running -= message.credits
        entries.append(
            _entry(campaign.client_id, "reserve", -message.credits, running, None, message.id)
        )
    session.add_all(entries)
    campaign.credits_held -= moved


async def release(session: AsyncSession, campaign: Campaign, why: str) -> None:
    """Give back what is left of the hold (the campaign is done or cancelled)."""
    amount = campaign.credits_held
    campaign.credits_held = Decimal(0)
    if not campaign.charged or amount <= 0:
        return
    balance = await _give_back(session, campaign.client_id, amount)
    session.add(
        _entry(campaign.client_id, "refund", amount, balance, f"campaign {campaign.id}: {why}")
    )


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
    balance = await _give_back(session, client_id, total)
    if balance is None:
        return
    running = balance - total
    entries = []
    for message_id, delta in reserved:
        running -= delta
        entries.append(_entry(client_id, "refund", -delta, running, reason, message_id))
    session.add_all(entries)


async def _give_back(session: AsyncSession, client_id: str, amount: Decimal) -> Decimal | None:
    """Credit the balance; back at or over the alert threshold re-arms the alert."""
    row = (
        await session.execute(
            update(ApiClient)
            .where(ApiClient.id == client_id, ApiClient.balance.is_not(None))
            .values(balance=ApiClient.balance + amount)
            .returning(ApiClient.balance, ApiClient.alert_threshold)
            .execution_options(synchronize_session=False)
        )
    ).first()
    if row is None:
        return None
    balance: Decimal | None = row[0]
    threshold: Decimal | None = row[1]
    if balance is None:  # pragma: no cover - the update only matched a set balance
        return None
    if threshold is not None and balance >= threshold:
        await session.execute(
            update(ApiClient)
            .where(ApiClient.id == client_id)
            .values(low_credit_alerted=False)
            .execution_options(synchronize_session=False)
        )
    return balance


def _entry(
    client_id: str,
    kind: str,
    delta: Decimal,
    balance_after: Decimal | None,
    reason: str | None,
    message_id: str | None = None,
) -> CreditEntry:
    return CreditEntry(
        client_id=client_id,
        kind=kind,
        delta=delta,
        balance_after=balance_after,
        message_id=message_id,
        reason=reason,
        created_at=utcnow(),
    )
