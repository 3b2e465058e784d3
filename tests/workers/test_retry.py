"""The retry strategy shared by messages, webhooks and every loop's backoff."""

from __future__ import annotations

from smsgateway.workers.retry import RetryPolicy


def test_retry_policy_grows_exponentially_with_jitter_and_honours_retry_after() -> None:
    policy = RetryPolicy(base_seconds=2, max_seconds=60, max_attempts=5)
    for attempt, full in [(1, 2), (2, 4), (3, 8), (6, 60), (20, 60)]:
        delays = [policy.delay(attempt) for _ in range(200)]
        assert all(full / 2 <= d <= full for d in delays)
        assert len(set(delays)) > 100  # jittered, not in step
    assert policy.delay(1, retry_after=30) >= 30
    assert policy.delay(1, retry_after=3600) == 60
    assert not policy.exhausted(4)
    assert policy.exhausted(5)
