"""FakeProvider: recording, sequential ids, tag lookup and failure injection."""

from __future__ import annotations

import asyncio

import pytest

from smsgateway.providers.base import (
    JobResult,
    OutgoingJob,
    PermanentProviderError,
    SmsProvider,
    TransientProviderError,
)
from smsgateway.providers.fake import FakeProvider


def job(tag: str = "t1", receivers: list[str] | None = None) -> OutgoingJob:
    return OutgoingJob(text="hello", receivers=receivers or ["+33601020304"], tag=tag)


async def test_records_and_numbers_sequentially() -> None:
    fake = FakeProvider()
    checked: SmsProvider = fake
    assert checked.name == "fake"
    first = await fake.send(job("a", ["+33601020304", "+33611223344"]))
    second = await fake.send(job("b"))
    assert first == JobResult(
        ids={"+33601020304": "fake-1", "+33611223344": "fake-2"}, credits_removed=2.0
    )
    assert second.ids == {"+33601020304": "fake-3"}
    assert [j.tag for j in fake.sent] == ["a", "b"]


async def test_find_by_tag() -> None:
    fake = FakeProvider()
    await fake.send(job("a"))
    await fake.send(job("b"))
    await fake.send(job("a"))
    assert await fake.find_by_tag("a") == ["fake-1", "fake-3"]
    assert await fake.find_by_tag("zzz") == []


async def test_fail_next_is_consumed_before_recording() -> None:
    fake = FakeProvider()
    fake.fail_next = [TransientProviderError("down"), PermanentProviderError("refused")]
    with pytest.raises(TransientProviderError):
        await fake.send(job())
    with pytest.raises(PermanentProviderError):
        await fake.send(job())
    assert fake.sent == []
    assert await fake.find_by_tag("t1") == []
    result = await fake.send(job())
    assert result.ids == {"+33601020304": "fake-1"}
    assert len(fake.sent) == 1


async def test_fail_after_accept_simulates_lost_answer() -> None:
    fake = FakeProvider()
    fake.fail_after_accept_next = [TransientProviderError("answer lost", uncertain=True)]
    with pytest.raises(TransientProviderError) as info:
        await fake.send(job("lost"))
    assert info.value.uncertain
    assert len(fake.sent) == 1
    assert await fake.find_by_tag("lost") == ["fake-1"]


async def test_invalid_receivers() -> None:
    fake = FakeProvider()
    fake.invalid_receivers = {"+1"}
    result = await fake.send(job(receivers=["+1", "+33601020304"]))
    assert result.ids == {"+33601020304": "fake-1"}
    assert result.invalid_receivers == ["+1"]
    all_invalid = await fake.send(job(receivers=["+1"]))
    assert all_invalid == JobResult(ids={}, invalid_receivers=["+1"])


async def test_tag_too_long_refused() -> None:
    fake = FakeProvider()
    with pytest.raises(ValueError, match="20 characters"):
        await fake.send(job("x" * 21))
    assert fake.sent == []


async def test_concurrent_sends_get_unique_ids() -> None:
    fake = FakeProvider()
    results = await asyncio.gather(*(fake.send(job(f"t{i}")) for i in range(50)))
    ids = [i for r in results for i in r.ids.values()]
    assert len(set(ids)) == 50
    assert len(fake.sent) == 50


async def test_aclose() -> None:
    fake = FakeProvider()
    await fake.aclose()
    assert fake.closed
