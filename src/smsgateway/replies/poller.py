"""Polling the provider for replies and for its own STOP list.

OVHcloud's push of incoming SMS is not documented, so replies are also read
through the API (``GET /sms/{sn}/incoming``): each one is stored and acted on
in its own transaction, then deleted at the provider. A crash between the
two only means the SMS is read again, and the unique provider id makes that
harmless. The account's blacklist (numbers that sent STOP to OVHcloud
itself) is synced less often, by a loop of its own: each runs on
``workers.loop`` and a failure of one does not hold the other up.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from smsgateway.models.phones import NumberState
from smsgateway.numbers import InvalidNumber, normalise
from smsgateway.providers.base import ProviderError
from smsgateway.replies.service import REPLY_REGION, handle_incoming, opt_out
from smsgateway.runtime import Runtime
from smsgateway.workers.loop import SupervisedLoop, error_backoff

log = logging.getLogger(__name__)


# A failed poll is tried again after this, then less and less often.
RETRY_SECONDS = 1.0


class ReplyPoller:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        settings = runtime.settings
        self.incoming = _every(
            "incoming poller", settings.replies.incoming_poll_seconds, self.poll_incoming
        )
        self.blacklist = _every(
            "blacklist sync", settings.replies.blacklist_sync_seconds, self.sync_blacklist
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Both loops until ``stop``; an interval of 0 turns its loop off."""
        settings = self.runtime.settings
        loops = [
            loop.run(stop)
            for loop, seconds in (
                (self.incoming, settings.replies.incoming_poll_seconds),
                (self.blacklist, settings.replies.blacklist_sync_seconds),
            )
            if seconds > 0
        ]
        await asyncio.gather(*loops)

    async def poll_incoming(self) -> int:
        """Store and act on every SMS waiting at the provider. Returns how many were new."""
        provider = self.runtime.provider
        new = 0
        for sms in await provider.fetch_incoming():
            async with self.runtime.sessionmaker() as session, session.begin():
                outcome = await handle_incoming(session, self.runtime, sms, provider=provider.name)
            new += outcome is not None
            self.runtime.wakeup.set()
            await provider.delete_incoming(sms.provider_id)
        return new

    async def sync_blacklist(self) -> int:
        """Opt out the numbers the provider lists as STOPped. Returns how many changed.

        A number that sent START since is taken off the provider's list
        instead: the list is older than the user's last word.
        """
        changed = 0
        region = self.runtime.settings.locale.default_region or REPLY_REGION
        provider = self.runtime.provider
        for raw in await provider.fetch_blacklist():
            try:
                number = normalise(raw, region).e164
            except InvalidNumber:
                continue
            async with self.runtime.sessionmaker() as session, session.begin():
                state = await session.get(NumberState, number)
                if state is not None and state.opted_in_at is not None:
                    await provider.remove_from_blacklist(raw)
                    continue
                changed += await opt_out(
                    session, self.runtime, number, source="provider_blacklist", confirm=False
                )
        return changed


def _every(name: str, seconds: float, work: Callable[[], Awaitable[int]]) -> SupervisedLoop:
    """A loop running ``work`` every ``seconds``, counted from the start of each run."""

    async def timed() -> float:
        started = time.monotonic()
        await work()
        return max(0.0, started + seconds - time.monotonic())

    return SupervisedLoop(
        name, timed, backoff=error_backoff(RETRY_SECONDS), expected=(ProviderError,)
    )
