"""Reports of one batch arriving together, each correcting the batch's SMS ids."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from smsgateway.config import Settings
from smsgateway.messages.dispatcher import Dispatcher
from smsgateway.messages.reports import ReportIn, record_report
from smsgateway.providers.base import JobResult, OutgoingJob
from smsgateway.providers.fake import FakeProvider
from smsgateway.runtime import build_runtime
from tests.helpers import send_message, stored_message

TEXT = "Your booking starts tomorrow."
ANNA, BRUNO, CLARA = "+33612000041", "+33612000042", "+33612000043"


class RotatedIds(FakeProvider):
    """Answers a job's ids rotated by one against its receivers (a 3-cycle, not a swap)."""

    async def send(self, job: OutgoingJob) -> JobResult:
        result = await super().send(job)
        receivers = list(result.ids)
        ids = [result.ids[r] for r in receivers]
        rotated = ids[1:] + ids[:1]
        return JobResult(
            ids=dict(zip(receivers, rotated, strict=True)),
            invalid_receivers=result.invalid_receivers,
            credits_removed=result.credits_removed,
        )


def delivered_report(provider: FakeProvider, receiver: str, tag: str) -> ReportIn:
    """A "delivered" report of ``receiver``'s SMS in job ``tag``, as OVHcloud writes it."""
    sms_id = next(i for i, to in provider.receivers.items() if to == receiver)
    return ReportIn(
        provider="ovh",
        provider_id=sms_id,
        dlr=1,
        ptt=4,
        reported_at="2026-12-03 10:00:00",
        description=None,
        params={},
        tag=tag,
        receiver=receiver.replace("+", "00"),
    )


async def test_two_reports_of_one_batch_at_once_leave_every_id_with_its_receiver(
    http: httpx.AsyncClient, auth: dict[str, str], settings: Settings, is_postgres: bool
) -> None:
    """A report is never applied to the wrong message.

    OVHcloud sends a batch's reports at about the same moment. Each reads who
    holds its id and may swap it with a sibling: locked only by their SMS ids,
    two reports of one job would read the same holders and, under PostgreSQL's
    READ COMMITTED, the second swap would overwrite the first (two messages with
    one SMS id, one id with none). ``lock_job`` makes them take turns.
    """
    if not is_postgres:
        pytest.skip("concurrent writers: PostgreSQL's READ COMMITTED")
    provider = RotatedIds()
    runtime = build_runtime(settings, provider)
    try:
        ids = {
            to: (await send_message(http, auth, to=to, text=TEXT))["id"]
            for to in (ANNA, BRUNO, CLARA)
        }
        await Dispatcher(runtime, worker_id="w1").run_once()
        tag = provider.sent[0].tag
        held = {to: (await stored_message(runtime, ids[to])).provider_id for to in ids}
        assert held[ANNA] == delivered_report(provider, BRUNO, tag).provider_id  # rotated

        # Bruno's report (held by Anna's message) and Clara's (held by Bruno's) at once.
        first = runtime.sessionmaker()
        second = runtime.sessionmaker()
        try:
            bruno, clara = (delivered_report(provider, to, tag) for to in (BRUNO, CLARA))
            await record_report(first, bruno)  # not committed yet
            racing = asyncio.create_task(_record_and_commit(second, clara))
            await asyncio.sleep(0.5)  # the second has read the holders, and waits on a row
            await first.commit()
            await racing
        finally:
            await first.close()
            await second.close()

        real = {to: delivered_report(provider, to, tag).provider_id for to in (ANNA, BRUNO, CLARA)}
        after = {to: (await stored_message(runtime, ids[to])).provider_id for to in ids}
        assert sorted(map(str, after.values())) == sorted(map(str, real.values())), after
        assert after[BRUNO] == real[BRUNO] and after[CLARA] == real[CLARA]
    finally:
        await runtime.aclose()


async def _record_and_commit(session, report: ReportIn) -> None:  # type: ignore[no-untyped-def]
    await record_report(session, report)
    await session.commit()
