"""The background work of a process: dispatch, webhooks, replies, report checks, campaigns."""

from __future__ import annotations

import asyncio

import httpx

from smsgateway.campaigns.worker import CampaignWorker
from smsgateway.messages.dispatcher import Dispatcher
from smsgateway.messages.report_checks import ReportChecker
from smsgateway.replies.poller import ReplyPoller
from smsgateway.runtime import Runtime
from smsgateway.webhooks.sender import WebhookSender
from smsgateway.workers.claim import default_worker_id
from smsgateway.workers.clock import ClockSync


async def run_workers(runtime: Runtime, stop: asyncio.Event) -> None:
    """Run until ``stop`` is set; each loop finishes or releases what it holds.

    The clock is measured before any loop starts, so the first claim already
    compares leases by the database's time.
    """
    worker_id = default_worker_id()
    clock = ClockSync(runtime)
    await clock.loop.run_pass()
    async with httpx.AsyncClient(follow_redirects=False) as http:
        await asyncio.gather(
            clock.run(stop),
            Dispatcher(runtime, worker_id=worker_id).run(stop),
            WebhookSender(runtime, http, worker_id=worker_id).run(stop),
            ReplyPoller(runtime).run(stop),
            ReportChecker(runtime).run(stop),
            CampaignWorker(runtime, worker_id=worker_id).run(stop),
        )
