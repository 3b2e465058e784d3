"""Cancelling a campaign whose messages OVHcloud may have (a lost answer): pending, not a 409."""

from __future__ import annotations

import httpx
from sqlalchemy import select

from smsgateway.messages.dispatcher import Dispatcher
from smsgateway.models.webhooks import WebhookDelivery
from smsgateway.providers.base import TransientProviderError
from smsgateway.providers.fake import FakeProvider
from smsgateway.runtime import Runtime
from tests.campaigns.test_campaigns_api import (  # noqa: F401
    _all_due,
    _balance,
    _now_worker,
    _post,
    blocked_numbers,
)
from tests.factories import make_client
from tests.helpers import make_due, stored_messages


async def test_a_campaign_whose_messages_are_uncertain_can_be_cancelled(
    http: httpx.AsyncClient, runtime: Runtime, dispatcher: Dispatcher, provider: FakeProvider
) -> None:
    shop = await make_client(runtime, quota=100)
    accepted = await _post(http, shop.auth, 202, quiet_hours=False)
    await _now_worker(runtime).run_once()
    await _all_due(runtime)
    # Every send's answer is lost; OVHcloud never saw them.
    provider.fail_next = [TransientProviderError("connection reset", uncertain=True)] * 10
    await dispatcher.run_once()
    waiting = [m for m in (await stored_messages(runtime)).values() if m.status == "queued"]
    assert waiting and all(m.uncertain for m in waiting)
    provider.fail_next = []

    # Not a 409 "already sent": they are cancelled once OVHcloud is known not to have them.
    response = await http.post(f"/v1/campaigns/{accepted['id']}/cancel", headers=shop.auth)
    assert response.status_code == 200, response.text

    await make_due(runtime)
    await dispatcher.run_once()  # looked up, not found
    await make_due(runtime)
    await dispatcher.run_once()
    assert provider.sent == []
    balance, ledger = await _balance(runtime, shop.id)
    assert balance == ledger


async def test_cancelling_a_campaign_sends_no_webhook_per_message(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    # README (campaigns): "Cancelled messages get no webhook each".
    shop = await make_client(runtime, quota=100, webhook_url="https://shop.example/hooks")
    accepted = await _post(http, shop.auth, 202, quiet_hours=False)
    await _now_worker(runtime).run_once()
    response = await http.post(f"/v1/campaigns/{accepted['id']}/cancel", headers=shop.auth)
    assert response.status_code == 200, response.text
    async with runtime.sessionmaker() as session:
        told = (
            await session.scalars(
                select(WebhookDelivery).where(WebhookDelivery.event_type == "message.status")
            )
        ).all()
    assert [row.payload["data"]["status"] for row in told] == []
