"""The low-credit alert: one ``quota.low`` per crossing below the threshold.

``api_clients.low_credit_alerted`` is the alert's state, written only here: down
(armed), the next balance below ``alert_threshold`` sends one ``quota.low`` webhook
and raises it; up, nothing more is sent until ``rearm`` lowers it again, once the
balance is back at or above the threshold (or the client has no threshold, or no
quota). See the package docstring for who calls what.
"""

from __future__ import annotations

import logging
from decimal import Decimal

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from smsgateway.credits.problems import amount
from smsgateway.models.clients import ApiClient
from smsgateway.webhooks.service import enqueue

log = logging.getLogger(__name__)


def covered(balance: Decimal | None, threshold: Decimal | None) -> bool:
    """No alert is due: unlimited, no threshold, or a balance at or above it."""
    return balance is None or threshold is None or balance >= threshold


def due(balance: Decimal, threshold: Decimal | None, alerted: bool) -> bool:
    """A ``quota.low`` is due: the balance is below the threshold and none was sent yet."""
    return not alerted and not covered(balance, threshold)


async def check(session: AsyncSession, client_id: str, balance: Decimal) -> None:
    """Send ``quota.low`` if ``balance`` is below the threshold and the alert is armed.

    The flag is raised by a conditional ``UPDATE``, so of concurrent transactions
    that cross together only one sends the webhook.
    """
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
        amount(balance),
        amount(client.alert_threshold or 0),
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


async def rearm(
    session: AsyncSession,
    client_id: str,
    *,
    balance: Decimal | None,
    threshold: Decimal | None,
    alerted: bool,
) -> None:
    """Arm the alert again if it was sent and the balance is no longer low.

    ``balance``, ``threshold`` and ``alerted`` are the client's as just written
    (read back from the locked row), so the next crossing alerts again.
    """
    if not alerted or not covered(balance, threshold):
        return
    await session.execute(
        update(ApiClient)
        .where(ApiClient.id == client_id, ApiClient.low_credit_alerted.is_(True))
        .values(low_credit_alerted=False)
        .execution_options(synchronize_session=False)
    )


async def sync(session: AsyncSession, client_id: str) -> None:
    """Make the alert agree with the balance and threshold an administrator just set.

    At or above the threshold (or with no threshold, or unlimited) the alert is
    armed again. Below it, one ``quota.low`` is sent unless it already was for
    this crossing: lowering the balance by hand or raising the threshold above it
    is a crossing too, and the marketplace should hear about it. The client's
    row is rewritten without updating a loaded ``ApiClient``: refresh it after.
    """
    client = await session.get(ApiClient, client_id, populate_existing=True)
    assert client is not None
    balance, threshold = client.balance, client.alert_threshold
    if covered(balance, threshold):
        await rearm(
            session,
            client_id,
            balance=balance,
            threshold=threshold,
            alerted=client.low_credit_alerted,
        )
        return
    assert balance is not None
    await check(session, client_id, balance)  # sends at most one per crossing
