"""The retry delay and the rate cap, on their own (the delivery tests run them for real)."""

from __future__ import annotations

import time

from revo_integrations.delivery import RateCaps, RetryPolicy


def test_the_delay_doubles_with_jitter_up_to_the_cap_and_honours_retry_after():
    policy = RetryPolicy(max_attempts=8, base_s=2.0, max_s=60.0)
    for failures, ceiling in ((1, 2.0), (2, 4.0), (3, 8.0), (6, 60.0), (20, 60.0)):
        delays = [policy.delay(failures) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert max(delays) - min(delays) > ceiling / 10  # jittered, not one value
    assert policy.delay(1, retry_after=30.0) == 30.0
    assert policy.delay(6, retry_after=0.5) >= 30.0  # the backoff when it is longer


async def test_the_rate_cap_lets_a_burst_through_then_queues_and_sends_the_far_back_away():
    caps = RateCaps({"slack": 10.0, "webhook": 0.0}, burst=3)
    assert [caps.reserve("slack", "c1") for _ in range(3)] == [0.0, 0.0, 0.0]
    started = time.monotonic()
    assert await caps.take("slack", "c1", hold_at_most=0.5) == 0.0  # ~0.1 s in place
    assert 0.05 <= time.monotonic() - started <= 0.3
    # Far back in the queue: not taken, told when to come back (and its place given up).
    wait = await caps.take("slack", "c1", hold_at_most=0.01)
    assert 0.05 <= wait <= 0.2
    assert await caps.take("slack", "c2", hold_at_most=0.0) == 0.0  # another channel
    assert all(caps.reserve("webhook", "w") == 0.0 for _ in range(1000))  # uncapped
