"""The durable consumer of one notification channel: NOTIFY, `notify-<channel>`, subjects
`notify.<channel>.*`, explicit acks, no delivery limit (the delivery loop dead-letters).

Deliveries run concurrently (up to `concurrency` per channel), each in a span continuing
the publisher's trace. A message that is not a Notification, or whose tenant or channel
differs from its subject's (a forged or misrouted one), is refused: terminated (never
redelivered), logged and counted; the consumer goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import msgspec
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from revo_contracts.notify import Notification
from revo_contracts.streams import NOTIFY
from revo_core.bus import Bus
from revo_core.db import DATABASE_AWAY
from revo_core.logging import get_logger
from revo_core.tracing import process_span
from revo_integrations import metrics
from revo_integrations.delivery import Delivery

log = get_logger("revo.integrations.notify")
POLL_S = 1.0
_decoder = msgspec.json.Decoder(Notification)


def durable_name(channel: str) -> str:
    return f"notify-{channel}"


class ChannelConsumer:
    def __init__(
        self, bus: Bus, channel: str, delivery: Delivery, concurrency: int, ack_wait_s: float
    ) -> None:
        self.bus = bus
        self.channel = channel
        self.delivery = delivery
        self.concurrency = concurrency
        self.ack_wait_s = ack_wait_s
        self._slots = asyncio.Semaphore(concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        # Deliveries under way and when each began (for in-progress acks).
        self._in_flight: dict[int, tuple[Msg, float]] = {}  # by id(msg): Msg is unhashable
        self._loops: list[asyncio.Task[None]] = []
        self._subscription = None

    async def start(self) -> None:
        durable = durable_name(self.channel)
        config = ConsumerConfig(
            durable_name=durable,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=self.ack_wait_s,
            max_deliver=-1,
            max_ack_pending=max(1000, 4 * self.concurrency),
            filter_subject=f"notify.{self.channel}.*",
        )
        await self.bus.js.add_consumer(NOTIFY.name, config)
        self._subscription = await self.bus.js.pull_subscribe_bind(
            durable=durable, stream=NOTIFY.name
        )
        self._loops = [
            asyncio.create_task(self._consume(), name=f"notify-{self.channel}"),
            asyncio.create_task(self._keep_alive(), name=f"notify-{self.channel}-alive"),
        ]

    async def stop(self, grace: float = 5.0) -> None:
        """Stop fetching; let deliveries under way finish (up to `grace`): what does not
        finish is redelivered after the ack wait, to this or another replica."""
        for loop in self._loops:
            loop.cancel()
        for loop in self._loops:
            with contextlib.suppress(asyncio.CancelledError):
                await loop
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._subscription is not None:
            with contextlib.suppress(Exception):
                await self._subscription.unsubscribe()

    async def _consume(self) -> None:
        while True:
            free = self.concurrency - len(self._tasks)
            if free <= 0:
                await self._slots.acquire()  # wait for one delivery to end
                self._slots.release()
                continue
            try:
                msgs = await self._subscription.fetch(min(free, 256), timeout=POLL_S)
            except (NatsTimeout, TimeoutError):
                continue
            except Exception as exc:  # NATS away for now: keep trying, never die
                log.warning("fetching notifications failed", channel=self.channel, error=str(exc))
                await asyncio.sleep(0.5)
                continue
            for msg in msgs:
                await self._slots.acquire()
                task = asyncio.create_task(self._handle(msg))
                self._tasks.add(task)
                task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._slots.release()

    async def _keep_alive(self) -> None:
        """A slow destination must not make JetStream redeliver what is being delivered:
        every delivery older than a third of the ack wait gets an in-progress ack."""
        every = self.ack_wait_s / 3
        while True:
            await asyncio.sleep(every)
            due = time.monotonic() - every
            for msg, began in list(self._in_flight.values()):
                if began <= due:
                    with contextlib.suppress(Exception):
                        await msg.in_progress()

    async def _handle(self, msg: Msg) -> None:
        self._in_flight[id(msg)] = (msg, time.monotonic())
        try:
            await self._handle_one(msg)
        finally:
            self._in_flight.pop(id(msg), None)

    async def _handle_one(self, msg: Msg) -> None:
        with process_span(msg.subject, msg.headers) as span:
            note = self._accepted(msg)
            if note is None:
                with contextlib.suppress(Exception):
                    await msg.term()
                outcome = "refused"
            else:
                span.set_attribute("revo.notification_id", note.notification_id)
                span.set_attribute("revo.tenant", note.tenant)
                outcome = await self._deliver(note, msg, span)
        metrics.NOTIFICATIONS.labels(self.channel, outcome).inc()

    async def _deliver(self, note: Notification, msg: Msg, span) -> str:
        try:
            return await self.delivery.run(note, msg, span)
        except DATABASE_AWAY as exc:
            log.warning("notification waits for the database", error=type(exc).__name__)
        except Exception as exc:  # a bug or NATS away: the message comes back, nothing lost
            span.record_exception(exc)
            log.exception("notification delivery broke", notification_id=note.notification_id)
        with contextlib.suppress(Exception):
            await msg.nak(delay=2.0)
        return "retried"

    def _accepted(self, msg: Msg) -> Notification | None:
        try:
            note = _decoder.decode(msg.data)
        except (msgspec.DecodeError, RecursionError) as exc:
            log.error("malformed notification refused", subject=msg.subject, error=repr(exc)[:300])
            return None
        _, channel, tenant = msg.subject.split(".", 2)
        if note.tenant != tenant or note.channel != channel:
            log.error(
                "notification refused: tenant_mismatch",
                subject=msg.subject,
                notification_tenant=note.tenant,
                notification_channel=note.channel,
                notification_id=note.notification_id,
            )
            return None
        return note
