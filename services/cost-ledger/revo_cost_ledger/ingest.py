"""Consumes `usage.<tenant>` (stream USAGE, durable consumer `cost-ledger`) into Postgres.

Batches of deliveries are turned into rows (priced with the table in force), written in one
transaction, and acked only once it has committed; `writers` batches are written at once.
An event that cannot be recorded is dead-lettered and terminated, never retried. A batch
whose write fails is naked and comes back: recording is idempotent on event_id, so a
redelivery, a republished event or a crash between commit and ack changes nothing.

A delivery whose headers carry a trace context gets a `usage.<tenant> process` span in that
trace, ended when its batch has committed, so a trace shows the ledger's recording.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from typing import Any

from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, StatusCode

from revo_contracts import subjects
from revo_contracts.streams import USAGE
from revo_core import tracing
from revo_core.bus import Bus
from revo_core.logging import get_logger
from revo_cost_ledger import metrics
from revo_cost_ledger.alerts import AlertPublisher
from revo_cost_ledger.dead_letters import DeadLetters
from revo_cost_ledger.money import usd
from revo_cost_ledger.price_book import PriceBook
from revo_cost_ledger.puller import BatchPuller
from revo_cost_ledger.recorder import BatchResult, UsageRecorder
from revo_cost_ledger.settings import CostLedgerSettings
from revo_cost_ledger.usage_rows import (
    COST,
    EVENT_ID,
    MODEL,
    PRICED,
    PROVIDER,
    Rejection,
    RowBuilder,
)

log = get_logger("revo.cost_ledger.ingest")
_tracer = trace.get_tracer("revo.cost_ledger")

CONSUMER = "cost-ledger"
# How long one wait for deliveries lasts when none come (then the loop looks again).
LONG_POLL_S = 1.0
# A batch that could not be written comes back after this long.
RETRY_DELAY_S = 1.0
SHARDS = 16


class UsageIngest:
    def __init__(
        self,
        bus: Bus,
        recorder: UsageRecorder,
        prices: PriceBook,
        alerts: AlertPublisher,
        settings: CostLedgerSettings,
    ) -> None:
        self.bus = bus
        self.recorder = recorder
        self.prices = prices
        self.alerts = alerts
        self.settings = settings
        self.rows = RowBuilder(settings.max_tokens_per_event)
        self.dead_letters = DeadLetters(bus)
        self.puller = BatchPuller(bus.nc, USAGE.name, CONSUMER, settings.batch_size)
        # A writer slot per batch being written; each writes its own shard of the daily sums
        # (replicas start at a random shard, so that they rarely share one either).
        self._slots: asyncio.Queue[int] = asyncio.Queue()
        first = random.randrange(SHARDS)
        for slot in range(settings.writers):
            self._slots.put_nowait((first + slot) % SHARDS)
        self._writes: set[asyncio.Task[None]] = set()
        self._loop: asyncio.Task[None] | None = None

    async def start(self) -> None:
        config = ConsumerConfig(
            durable_name=CONSUMER,
            description="The cost ledger: every usage event, recorded once.",
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=self.settings.ack_wait_s,
            max_deliver=-1,
            max_ack_pending=self.settings.max_ack_pending,
            filter_subject=subjects.USAGE_ALL,
        )
        await self.bus.js.add_consumer(USAGE.name, config)
        await self.puller.start()
        self._loop = asyncio.create_task(self._pull_loop(), name="usage-pull")

    async def stop(self, grace: float) -> None:
        """Stop pulling, finish the batches being written, then return."""
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop
        # A pull subscription left open holds the connection's drain for its full timeout.
        leftover: list[Msg] = []
        with contextlib.suppress(Exception):
            leftover = await self.puller.stop()
        for msg in leftover:  # back to the stream now, for another replica
            with contextlib.suppress(Exception):
                await msg.nak()
        if self._writes:
            await asyncio.wait(set(self._writes), timeout=grace)

    async def _pull_loop(self) -> None:
        while True:
            # A free writer first, then the batch: it takes all that came meanwhile.
            shard = await self._slots.get()
            try:
                msgs = await self.puller.next_batch(LONG_POLL_S)
            except Exception as exc:  # a lost connection: keep trying, never die
                log.warning("pulling usage events failed", error=str(exc))
                msgs = []
                await asyncio.sleep(0.5)
            if not msgs:
                self._slots.put_nowait(shard)
                continue
            task = asyncio.create_task(self._write(msgs, shard), name="usage-write")
            self._writes.add(task)
            task.add_done_callback(lambda done, shard=shard: self._written(done, shard))

    def _written(self, task: asyncio.Task[None], shard: int) -> None:
        self._writes.discard(task)
        self._slots.put_nowait(shard)

    async def _write(self, msgs: list[Msg], shard: int) -> None:
        table, now = self.prices.table, time.time()
        rows: dict[str, tuple[Any, ...]] = {}
        kept: list[Msg] = []
        spans: dict[str, Span] = {}
        for msg in msgs:
            built = self.rows.build(msg.subject, msg.data, table, now)
            if isinstance(built, Rejection):
                await self._dead_letter(msg, built)
                continue
            kept.append(msg)
            rows.setdefault(built[EVENT_ID], built)
            if msg.headers and "traceparent" in msg.headers:
                spans.setdefault(built[EVENT_ID], _start_span(msg, built))
        if not kept:
            return
        started = time.perf_counter()
        try:
            ordered = [rows[k] for k in sorted(rows)]
            result = await self.recorder.record(ordered, list(spans), shard)
        except Exception as exc:
            await self._write_failed(kept, spans, exc)
            return
        for msg in kept:
            await msg.ack()
        metrics.BATCH_SECONDS.observe(time.perf_counter() - started)
        self._count(kept, rows, result)
        _end_spans(spans, result)
        if result.inserted:
            self.alerts.spent(result.tenants)

    async def _dead_letter(self, msg: Msg, rejection: Rejection) -> None:
        try:
            await self.dead_letters.send(msg, rejection)
        except Exception as exc:
            log.error("dead letter not stored; the event comes back", error=str(exc))
            with contextlib.suppress(Exception):
                await msg.nak(delay=RETRY_DELAY_S)

    async def _write_failed(self, msgs: list[Msg], spans: dict[str, Span], exc: Exception) -> None:
        metrics.WRITE_FAILURES.inc()
        log.error("usage batch not recorded; it comes back", events=len(msgs), error=str(exc))
        for span in spans.values():
            span.set_status(StatusCode.ERROR, str(exc))
            span.end()
        for msg in msgs:
            with contextlib.suppress(Exception):
                await msg.nak(delay=RETRY_DELAY_S)

    def _count(self, kept: list[Msg], rows: dict[str, tuple], result: BatchResult) -> None:
        metrics.BATCH_EVENTS.observe(len(kept))
        metrics.USAGE_EVENTS.labels("recorded").inc(result.inserted)
        metrics.USAGE_EVENTS.labels("duplicate").inc(len(kept) - result.inserted)
        metrics.TOKENS.labels("local").inc(result.local_tokens)
        metrics.TOKENS.labels("cloud").inc(result.cloud_tokens)
        metrics.COST_USD.labels("cost").inc(usd(result.cost_pico))
        metrics.COST_USD.labels("cloud_equivalent").inc(usd(result.cloud_pico))
        for row in rows.values():
            if not row[PRICED]:
                metrics.UNPRICED.labels(row[PROVIDER], row[MODEL]).inc()


def _start_span(msg: Msg, row: tuple[Any, ...]) -> Span:
    return _tracer.start_span(
        f"{msg.subject} process",
        context=tracing.extract(msg.headers),
        kind=SpanKind.CONSUMER,
        attributes={
            "messaging.system": "nats",
            "messaging.destination.name": msg.subject,
            "messaging.operation.type": "process",
            "revo.usage.event_id": row[EVENT_ID],
            "gen_ai.response.model": row[MODEL],
            "revo.ledger.cost_usd": usd(row[COST]),
        },
    )


def _end_spans(spans: dict[str, Span], result: BatchResult) -> None:
    for event_id, span in spans.items():
        span.set_attribute("revo.ledger.duplicate", event_id not in result.traced_inserted)
        span.end()
