"""Polling the provider for replies and for its own STOP list.

OVHcloud's push of incoming SMS is not documented, so replies are also read
through the API (``GET /sms/{sn}/incoming``): each one is stored and acted on
in its own transaction, then deleted at the provider. A crash between the
two only means the SMS is read again, and the unique provider id makes that
harmless. The account's blacklist (numbers that sent STOP to OVHcloud
itself) is synced less often.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from sqlalchemy.exc import DBAPIError, OperationalError

from smsgateway.models.phones import NumberState
from smsgateway.numbers import InvalidNumber, normalise
from smsgateway.providers.base import ProviderError
from smsgateway.replies.service import REPLY_REGION, handle_incoming, opt_out
from smsgateway.runtime import Runtime

log = logging.getLogger(__name__)


class ReplyPoller:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def run(self, stop: asyncio.Event) -> None:
        settings = self.runtime.settings
        if settings.incoming_poll_seconds <= 0 and settings.blacklist_sync_seconds <= 0:
            return
        next_poll = next_sync = time.monotonic()
        while not stop.is_set():
            now = time.monotonic()
            try:
                if settings.incoming_poll_seconds > 0 and now >= next_poll:
                    await self.poll_incoming()
                    next_poll = now + settings.incoming_poll_seconds
                if settings.blacklist_sync_seconds > 0 and now >= next_sync:
                    await self.sync_blacklist()
                    next_sync = now + settings.blacklist_sync_seconds
            except ProviderError as exc:
                log.warning("polling the provider failed: %s", exc.reason)
            except (OperationalError, DBAPIError, OSError) as exc:
                log.warning("database unavailable, polling waits: %s", type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=1.0)

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
        region = self.runtime.settings.default_region or REPLY_REGION
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
