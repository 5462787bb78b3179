"""The per-caller token buckets: the limit holds, and idle callers' buckets are dropped."""

from __future__ import annotations

import pytest

from revo_chat_gateway.http_errors import HttpError
from revo_chat_gateway.limits import TokenBuckets


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_caller_past_its_rate_is_told_when_to_retry():
    buckets = TokenBuckets(2, "requests", clock=Clock())
    buckets.take("ada")
    buckets.take("ada")

    with pytest.raises(HttpError) as refused:
        buckets.take("ada")

    assert refused.value.status == 429
    assert refused.value.headers == {"Retry-After": "30"}
    assert "2 requests per minute" in refused.value.message


def test_buckets_of_callers_gone_for_a_refill_period_are_dropped():
    clock = Clock()
    buckets = TokenBuckets(60, "requests", clock=clock)
    for caller in range(1000):
        buckets.take(f"caller-{caller}")
    assert len(buckets) == 1000

    clock.now += 61
    buckets.take("newcomer")

    assert len(buckets) == 1


def test_a_bucket_still_refilling_outlives_a_sweep_with_its_debt():
    clock = Clock()
    buckets = TokenBuckets(2, "requests", clock=clock)
    clock.now += 50
    buckets.take("ada")
    buckets.take("ada")

    clock.now += 20  # a sweep is due; ada has 2/3 of a token back, not a full bucket
    with pytest.raises(HttpError):
        buckets.take("ada")

    assert len(buckets) == 1
