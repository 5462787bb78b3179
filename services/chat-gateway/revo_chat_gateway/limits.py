"""Per-caller limits: a token bucket of requests per minute, and runs in flight at once.

Kept in this replica's memory: with N gateway replicas a caller gets up to N times the
rate (documented); a shared limiter would cost a round trip per request.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from revo_chat_gateway.http_errors import HttpError


@dataclass
class _Bucket:
    tokens: float
    updated: float = field(default_factory=time.monotonic)


class RateLimiter:
    def __init__(self, per_minute: int, max_concurrent_runs: int) -> None:
        self.rate = per_minute / 60.0
        self.capacity = float(per_minute)
        self.max_concurrent_runs = max_concurrent_runs
        self._buckets: dict[str, _Bucket] = {}
        self._runs: dict[str, int] = {}

    def check_request(self, subject: str) -> None:
        """Take a token for one request, or raise 429 with how long to wait."""
        now = time.monotonic()
        bucket = self._buckets.setdefault(subject, _Bucket(self.capacity, now))
        bucket.tokens = min(self.capacity, bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        if bucket.tokens < 1.0:
            wait = max(1, int((1.0 - bucket.tokens) / self.rate + 0.999))
            raise HttpError(
                429,
                f"rate limit of {int(self.capacity)} requests per minute reached; "
                f"retry in {wait} s",
                "rate_limited",
                {"Retry-After": str(wait)},
            )
        bucket.tokens -= 1.0

    @asynccontextmanager
    async def run_slot(self, subject: str) -> AsyncIterator[None]:
        """Hold one of the caller's concurrent-run slots while a run is followed."""
        running = self._runs.get(subject, 0)
        if running >= self.max_concurrent_runs:
            raise HttpError(
                429,
                f"{running} runs in flight: the limit is {self.max_concurrent_runs} at once",
                "rate_limited",
                {"Retry-After": "1"},
            )
        self._runs[subject] = running + 1
        try:
            yield
        finally:
            self._runs[subject] -= 1
            if not self._runs[subject]:
                del self._runs[subject]
