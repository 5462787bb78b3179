"""One durable pull consumer of a stream, handed message by message to its handler for as
long as the service runs. NATS going away pauses it; it never dies of a fetch error, and
the handler settles (acks, naks, terms) each message itself. Every replica binds the same
durable, so each message goes to one of them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from revo_core.bus import Bus
from revo_core.logging import get_logger

log = get_logger("revo.durable_consumer")


class DurableConsumer:
    def __init__(
        self,
        bus: Bus,
        stream: str,
        durable: str,
        filter_subject: str,
        handle: Callable[[Msg], Awaitable[None]],
        ack_wait_s: float = 30.0,
        batch: int = 64,
        poll_s: float = 1.0,
    ) -> None:
        self.bus = bus
        self.stream = stream
        self.durable = durable
        self.filter_subject = filter_subject
        self.handle = handle
        self.ack_wait_s = ack_wait_s
        self.batch = batch
        self.poll_s = poll_s
        self._loop: asyncio.Task[None] | None = None
        self._subscription = None

    async def start(self) -> None:
        config = ConsumerConfig(
            durable_name=self.durable,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=self.ack_wait_s,
            max_deliver=-1,
            filter_subject=self.filter_subject,
        )
        await self.bus.js.add_consumer(self.stream, config)
        self._subscription = await self.bus.js.pull_subscribe_bind(
            durable=self.durable, stream=self.stream
        )
        self._loop = asyncio.create_task(self._consume(), name=self.durable)

    async def stop(self) -> None:
        """Stop taking messages; one being handled is cut short and comes back unacked."""
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop
        if self._subscription is not None:
            with contextlib.suppress(Exception):
                await self._subscription.unsubscribe()

    async def _consume(self) -> None:
        assert self._subscription is not None
        while True:
            try:
                msgs = await self._subscription.fetch(self.batch, timeout=self.poll_s)
            except (NatsTimeout, TimeoutError):
                continue
            except Exception as exc:  # NATS away for now: keep trying, never die
                log.warning("fetching failed", consumer=self.durable, error=str(exc))
                await asyncio.sleep(0.5)
                continue
            for msg in msgs:
                await self.handle(msg)
