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

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from smsgateway.credits import alert
from smsgateway.credits.ledger import credit, entry
from smsgateway.credits.problems import not_enough
from smsgateway.models.campaigns import Campaign
from smsgateway.models.clients import ApiClient
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
        raise not_enough(amount, left, "This campaign")
    session.add(
        entry(client_id, "reserve", -amount, balance, f"campaign {campaign_id}: held for it")
    )
    await alert.check(session, client_id, balance)
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
    entries = [entry(campaign.client_id, "refund", moved, running, why)]
    for message in billable:
        running -= message.credits
        entries.append(
            entry(campaign.client_id, "reserve", -message.credits, running, None, message.id)
        )
    session.add_all(entries)
    campaign.credits_held -= moved


async def release(session: AsyncSession, campaign: Campaign, why: str) -> None:
    """Give back what is left of the hold (the campaign is done or cancelled)."""
    amount = campaign.credits_held
    campaign.credits_held = Decimal(0)
    if not campaign.charged or amount <= 0:
        return
    balance = await credit(session, campaign.client_id, amount)
    session.add(
        entry(campaign.client_id, "refund", amount, balance, f"campaign {campaign.id}: {why}")
    )
