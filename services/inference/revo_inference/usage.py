"""Usage events to the USAGE stream, one per request, deduplicated by request id."""

from __future__ import annotations

import asyncio
import time

from revo_contracts import subjects
from revo_contracts.usage import UsageEvent
from revo_core.bus import Bus
from revo_core.codec import encode
from revo_core.logging import get_logger
from revo_inference import metrics

log = get_logger("revo.inference.usage")


class UsagePublisher:
    """Publishes in the background so the caller's last chunk is never held up by it."""

    def __init__(self, bus: Bus, attempts: int = 5) -> None:
        self._bus = bus
        self._attempts = attempts
        self._tasks: set[asyncio.Task[None]] = set()

    def record(self, event: UsageEvent) -> None:
        event.created_at = event.created_at or time.time()
        task = asyncio.create_task(self._publish(event))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _publish(self, event: UsageEvent) -> None:
        subject = subjects.usage(event.tenant)
        for attempt in range(1, self._attempts + 1):
            try:
                # Retrying is safe: the stream drops a repeat of the same Nats-Msg-Id.
                await self._bus.js_publish(subject, event, msg_id=event.event_id)
                return
            except Exception as exc:
                log.warning("usage publish failed", attempt=attempt, error=str(exc))
                await asyncio.sleep(0.2 * 2**attempt)
        metrics.USAGE_PUBLISH_FAILURES.inc()
        # Last resort: the full event in the log, so it can be replayed by hand.
        log.error("usage event not stored", usage_event=encode(event).decode())

    async def flush(self, timeout: float = 10.0) -> None:
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)
