"""One notification's delivery: its record first, the channel's calls, then ack, retry later,
or dead-letter; never an ack before the notification is delivered or dead-lettered.

Retries are JetStream redeliveries (`nak` with a delay), so a waiting retry holds no task
and survives a restart: the delay is exponential with jitter, or the destination's
Retry-After when longer. Failures are counted in Postgres (not by JetStream's delivery
count, which a rate-cap deferral or a crash would also raise); after `max_attempts`, or at
once for a failure that would repeat (a 4xx, no integration), the notification goes to
NOTIFY_DEAD with its last error and is acked.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
from nats.aio.msg import Msg
from opentelemetry.trace import Span, StatusCode

from revo_contracts.integrations import Integration
from revo_contracts.notify import Notification
from revo_core.db import DATABASE_AWAY
from revo_core.logging import get_logger
from revo_integrations import metrics
from revo_integrations.channels import DeliveryContext, DeliveryFailed, NotifyChannel
from revo_integrations.config_store import ConfigStore
from revo_integrations.dead_letters import DeadLetters
from revo_integrations.notify_store import DeliveryRecord, NotifyStore

log = get_logger("revo.integrations.notify")

# How long a tenant's integration is reused without reading Postgres again (and opening
# its sealed secrets): a changed integration applies within this. A missing one is never
# remembered, so configuring it and redriving works at once.
CONFIG_TTL_S = 5.0
# A rate-cap wait longer than this gives the slot back (nak with the wait) rather than
# holding a delivery slot that other destinations could use.
HOLD_AT_MOST_S = 1.0


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 8
    base_s: float = 2.0
    max_s: float = 600.0

    def delay(self, failures: int, retry_after: float | None = None) -> float:
        """Wait before the next attempt after `failures` failures: base * 2^(n-1), capped,
        times a jitter in [0.5, 1] (retries of many notifications spread out), and never
        less than what the destination asked for."""
        backoff = min(self.max_s, self.base_s * 2 ** (failures - 1)) * random.uniform(0.5, 1.0)
        return max(backoff, retry_after or 0.0)


class RateCaps:
    """A token bucket per destination: `rate` messages per second, bursts of `burst`.

    Taking reserves a place in the destination's queue (tokens go below zero), so the wait
    grows with the deliveries ahead: the first in line waits in place, the ones further
    back give their place up and come back when theirs would be due, instead of every
    delivery slot waiting on one busy Slack channel."""

    def __init__(self, rates: dict[str, float], burst: int) -> None:
        self.rates = rates
        self.burst = burst
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)

    def reserve(self, channel: str, key: str) -> float:
        """Take a token; the seconds until it is due (0.0: now)."""
        rate = self.rates.get(channel, 0.0)
        if rate <= 0:
            return 0.0
        now = time.monotonic()
        tokens, at = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - at) * rate) - 1.0
        self._buckets[key] = (tokens, now)
        return 0.0 if tokens >= 0 else -tokens / rate

    def give_back(self, key: str) -> None:
        tokens, at = self._buckets[key]
        self._buckets[key] = (tokens + 1.0, at)

    async def take(self, channel: str, key: str, hold_at_most: float) -> float:
        """Take a token, waiting for it up to `hold_at_most`: 0.0; else nothing is taken,
        and the answer is the wait (when to come back)."""
        wait = self.reserve(channel, key)
        if wait <= hold_at_most:
            if wait > 0:
                await asyncio.sleep(wait)
            return 0.0
        self.give_back(key)
        return wait


class Delivery:
    def __init__(
        self,
        channels: dict[str, NotifyChannel],
        configs: ConfigStore,
        store: NotifyStore,
        dead_letters: DeadLetters,
        session: aiohttp.ClientSession,
        policy: RetryPolicy,
        caps: RateCaps,
    ) -> None:
        self.channels = channels
        self.configs = configs
        self.store = store
        self.dead_letters = dead_letters
        self.session = session
        self.policy = policy
        self.caps = caps
        self._integrations: dict[tuple[str, str], tuple[Integration, float]] = {}

    async def run(self, note: Notification, msg: Msg, span: Span) -> str:
        """Deliver one notification and settle its message; returns the outcome."""
        channel = self.channels[note.channel]
        integration = await self._integration(note.tenant, note.channel)
        if integration is not None:
            # Before the attempt is counted: a deferral is not an attempt that may have
            # reached the destination.
            key = channel.rate_key(note, integration)
            wait = await self.caps.take(note.channel, key, HOLD_AT_MOST_S)
            if wait > 0:
                await msg.nak(delay=wait * random.uniform(1.0, 1.5))
                return "deferred"
        record = await self.store.begin(note)
        if record.state != "pending":  # delivered, or dead-lettered: a late redelivery
            await msg.ack()
            return "duplicate"
        if integration is None:
            failure = DeliveryFailed(
                f"tenant {note.tenant} has no {note.channel} integration", permanent=True
            )
            return await self._failed(note, msg, record, failure, span)
        try:
            await self._attempt(channel, note, integration, record)
        except DeliveryFailed as failure:
            return await self._failed(note, msg, record, failure, span)
        await self.store.delivered(note)
        await msg.ack()
        return "delivered"

    async def _integration(self, tenant: str, kind: str) -> Integration | None:
        now = time.monotonic()
        cached = self._integrations.get((tenant, kind))
        if cached is not None and cached[1] > now:
            return cached[0]
        integration = await self.configs.get(tenant, kind)
        if integration is not None:
            self._integrations[(tenant, kind)] = (integration, now + CONFIG_TTL_S)
        return integration

    async def _attempt(
        self,
        channel: NotifyChannel,
        note: Notification,
        integration: Integration,
        record: DeliveryRecord,
    ) -> None:
        async def keep(**posted: Any) -> None:
            record.posted.update(posted)
            await self.store.save_posted(note, **posted)

        ctx = DeliveryContext(session=self.session, store=self.store, record=record, keep=keep)
        started = time.perf_counter()
        try:
            await channel.deliver(ctx, note, integration)
        except (DeliveryFailed, *DATABASE_AWAY):
            raise
        except Exception as exc:
            # An answer the channel did not expect (a 2xx without the id it needs, ...):
            # counted like any failure, so it ends in NOTIFY_DEAD rather than loop for ever.
            log.exception("unexpected delivery failure", notification_id=note.notification_id)
            raise DeliveryFailed(f"unexpected: {type(exc).__name__}: {exc}"[:2048]) from None
        finally:
            metrics.NOTIFY_SECONDS.labels(note.channel).observe(time.perf_counter() - started)

    async def _failed(
        self,
        note: Notification,
        msg: Msg,
        record: DeliveryRecord,
        failure: DeliveryFailed,
        span: Span,
    ) -> str:
        span.set_status(StatusCode.ERROR, failure.detail[:200])
        failures = await self.store.failed(note, failure.detail)
        if failure.permanent or failures >= self.policy.max_attempts:
            reason = "permanent" if failure.permanent else "attempts"
            await self.dead_letters.send(note, msg, failures, failure.detail)
            await self.store.dead(note, failure.detail)
            await msg.ack()
            metrics.NOTIFY_DEAD_LETTERS.labels(note.channel, reason).inc()
            log.warning(
                "notification dead-lettered",
                notification_id=note.notification_id,
                tenant=note.tenant,
                channel=note.channel,
                attempts=failures,
                reason=reason,
                error=failure.detail[:500],
            )
            return "dead"
        delay = self.policy.delay(failures, failure.retry_after)
        await msg.nak(delay=delay)
        metrics.NOTIFY_RETRIES.labels(note.channel, failure.reason).inc()
        log.info(
            "notification delivery failed, retrying",
            notification_id=note.notification_id,
            channel=note.channel,
            failures=failures,
            retry_in_s=round(delay, 3),
            error=failure.detail[:300],
        )
        return "retried"
