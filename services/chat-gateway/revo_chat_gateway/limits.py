"""Per-caller limits: token buckets (requests and WebSocket frames per minute, new chat
sessions per minute), and runs in flight at once.

Kept in this replica's memory: with N gateway replicas a caller gets up to N times the
rate (documented); a shared limiter would cost a round trip per request.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from revo_chat_gateway.http_errors import HttpError


@dataclass
class _Bucket:
    tokens: float
    updated: float


class TokenBuckets:
    """A token bucket per caller: `per_minute` at once, refilled at that rate.

    A bucket left alone until it is full again is the same as no bucket, so such buckets
    are dropped (swept at most once a refill period): callers that come and go do not
    grow the map without bound."""

    def __init__(
        self, per_minute: int, what: str, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = per_minute / 60.0
        self.capacity = float(per_minute)
        self.what = what  # "requests", "new sessions": named in the 429's message
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._swept = clock()

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, subject: str) -> None:
        """Take one token of the caller's, or raise 429 with how long to wait."""
        now = self._clock()
        self._sweep(now)
        bucket = self._buckets.setdefault(subject, _Bucket(self.capacity, now))
        bucket.tokens = self._refilled(bucket, now)
        bucket.updated = now
        if bucket.tokens < 1.0:
            wait = max(1, int((1.0 - bucket.tokens) / self.rate + 0.999))
            raise HttpError(
                429,
                f"rate limit of {int(self.capacity)} {self.what} per minute reached; "
                f"retry in {wait} s",
                "rate_limited",
                {"Retry-After": str(wait)},
            )
        bucket.tokens -= 1.0

    def _refilled(self, bucket: _Bucket, now: float) -> float:
        return min(self.capacity, bucket.tokens + (now - bucket.updated) * self.rate)

    def _sweep(self, now: float) -> None:
        refill_s = self.capacity / self.rate if self.rate else float("inf")
        if now - self._swept < refill_s:
            return
        self._swept = now
        full = [s for s, b in self._buckets.items() if self._refilled(b, now) >= self.capacity]
        for subject in full:
            del self._buckets[subject]


class RateLimiter:
    def __init__(
        self, per_minute: int, max_concurrent_runs: int, new_sessions_per_minute: int = 30
    ) -> None:
        self.requests = TokenBuckets(per_minute, "requests")
        self.new_sessions = TokenBuckets(new_sessions_per_minute, "new sessions")
        self.max_concurrent_runs = max_concurrent_runs
        self._runs: dict[str, int] = {}

    def check_request(self, subject: str) -> None:
        """Take a token for one request (or WebSocket frame), or raise 429."""
        self.requests.take(subject)

    def check_new_session(self, subject: str) -> None:
        """Take a token for one new chat session (a row in Postgres), or raise 429."""
        self.new_sessions.take(subject)

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
