"""The background work of a process: dispatch, webhooks, replies, report checks, campaigns."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx

from smsgateway.campaigns.worker import CampaignWorker
from smsgateway.messages.dispatcher import Dispatcher
from smsgateway.messages.report_checks import ReportChecker
from smsgateway.privacy.retention import Retention
from smsgateway.replies.poller import ReplyPoller
from smsgateway.runtime import Runtime
from smsgateway.webhooks.sender import WebhookSender
from smsgateway.workers.claim import default_worker_id
from smsgateway.workers.clock import ClockSync
from smsgateway.workers.loop import stalled_loops

log = logging.getLogger(__name__)

# How often the watchdog looks at the loops, and how long they get to stop after a stall.
WATCH_SECONDS = 5.0
STOP_GRACE_SECONDS = 15.0


async def run_workers(
    runtime: Runtime, stop: asyncio.Event, *, watchdog: bool = False
) -> list[str]:
    """Run until ``stop`` is set; each loop finishes or releases what it holds.

    The clock is measured before any loop starts, so the first claim already
    compares leases by the database's time.

    With ``watchdog`` (the ``worker`` command), a loop that makes no progress
    for ``SMSGW_LOOP_STALL_SECONDS`` stops them all: its name is returned, and
    the command exits non-zero so that its supervisor restarts it. Without
    (``serve``), ``/readyz`` names it and answers 503.
    """
    worker_id = default_worker_id()
    clock = ClockSync(runtime)
    await clock.loop.run_pass()
    async with httpx.AsyncClient(follow_redirects=False) as http:
        loops = asyncio.gather(
            clock.run(stop),
            Dispatcher(runtime, worker_id=worker_id).run(stop),
            WebhookSender(runtime, http, worker_id=worker_id).run(stop),
            ReplyPoller(runtime).run(stop),
            ReportChecker(runtime).run(stop),
            CampaignWorker(runtime, worker_id=worker_id).run(stop),
            Retention(runtime).run(stop),
        )
        if not watchdog:
            await loops
            return []
        stalled = await _watch(runtime, stop, loops)
    return stalled


async def _watch(runtime: Runtime, stop: asyncio.Event, loops: asyncio.Future[Any]) -> list[str]:
    """Wait for ``loops``; on a stall, stop them (cancelled after a grace) and name it."""
    allowance = runtime.settings.worker.stall_seconds
    stalled: list[str] = []
    while not loops.done():
        await asyncio.wait([loops], timeout=WATCH_SECONDS)
        stalled = [] if stop.is_set() else stalled_loops(allowance)
        if stalled:
            log.error("no progress for %.0fs in %s: stopping", allowance, ", ".join(stalled))
            stop.set()
            break
    try:
        await asyncio.wait_for(loops, STOP_GRACE_SECONDS if stalled else None)
    except TimeoutError:
        log.error("loops did not stop within %.0fs: cancelled", STOP_GRACE_SECONDS)
    return stalled
