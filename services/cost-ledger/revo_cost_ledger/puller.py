"""A pull consumer that keeps its pull requests ahead of use, for throughput.

nats-py's `fetch(n)` asks for a batch, then waits message by message until it is full;
between two fetches the server has nothing to deliver into. Here requests for `2 x batch`
messages are kept open (topped up as messages arrive), so the server streams deliveries
while the previous batch is being written, and a batch is whatever arrived, up to `batch`.
The messages come through one plain subscription on a private inbox.

Open requests are tracked locally: the server serves pull requests in order, so each
delivery counts against the oldest open request, and a request also ends when its
`expires` passes or the server says it ended (408/409 status). Under-counting only means
a request too many, over-counting a short pause until the expiry: neither loses anything.
"""

from __future__ import annotations

import asyncio
import collections
import json
import time
from dataclasses import dataclass

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from revo_core.logging import get_logger

log = get_logger("revo.cost_ledger.puller")

_ACK_PREFIX = "$JS.ACK."
# Status codes on the inbox: 100 idle heartbeat, 404 no messages, 408 request expired,
# 409 request ended (max waiting, consumer deleted, leadership change, ...).
_ENDS_REQUEST = {"404", "408", "409"}
PAUSE_AFTER_REFUSAL_S = 0.5


@dataclass
class _Request:
    remaining: int
    expires_at: float


class BatchPuller:
    def __init__(
        self,
        nc: Client,
        stream: str,
        durable: str,
        batch: int,
        expires_s: float = 5.0,
        api_prefix: str = "$JS.API",
    ) -> None:
        self._nc = nc
        self._batch = batch
        self._expires_s = expires_s
        self._next_subject = f"{api_prefix}.CONSUMER.MSG.NEXT.{stream}.{durable}"
        self._inbox = ""
        self._sub: Subscription | None = None
        self._ready: collections.deque[Msg] = collections.deque()
        self._arrived = asyncio.Event()
        self._requests: collections.deque[_Request] = collections.deque()
        self._pause_until = 0.0

    async def start(self) -> None:
        self._inbox = self._nc.new_inbox()
        self._sub = await self._nc.subscribe(
            self._inbox,
            cb=self._on_message,
            pending_msgs_limit=self._batch * 8,
            pending_bytes_limit=256 * 1024 * 1024,
        )

    async def stop(self) -> list[Msg]:
        """Unsubscribe, and return what arrived but was not taken (for the caller to hand
        back). Deliveries into open requests after this come back after the ack wait."""
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None
        leftover = list(self._ready)
        self._ready.clear()
        return leftover

    async def next_batch(self, wait_s: float) -> list[Msg]:
        """Up to `batch` messages; waits up to `wait_s` for the first, returns [] if none."""
        await self._top_up()
        if not self._ready:
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), wait_s)
            except TimeoutError:
                return []
        taken = min(len(self._ready), self._batch)
        batch = [self._ready.popleft() for _ in range(taken)]
        await self._top_up()
        return batch

    async def _top_up(self) -> None:
        now = time.monotonic()
        while self._requests and self._requests[0].expires_at <= now:
            self._requests.popleft()
        open_for = sum(request.remaining for request in self._requests)
        # Keep two batches asked for, minus what is waiting to be taken already.
        wanted = 2 * self._batch - open_for - len(self._ready)
        if wanted < self._batch // 2 or self._sub is None or now < self._pause_until:
            return
        body = {"batch": wanted, "expires": int(self._expires_s * 1e9)}
        await self._nc.publish(self._next_subject, json.dumps(body).encode(), reply=self._inbox)
        # A little before the server's own expiry, so the count never lags behind it.
        self._requests.append(_Request(wanted, now + self._expires_s - 0.05))

    async def _on_message(self, msg: Msg) -> None:
        if msg.reply and msg.reply.startswith(_ACK_PREFIX):
            self._count_delivery()
            self._ready.append(msg)
            self._arrived.set()
            return
        status = (msg.headers or {}).get("Status")
        if status not in _ENDS_REQUEST or not self._requests:
            return
        self._requests.popleft()
        if status == "409":
            # Refused or cut short (too many waiting requests, a leader change, ...): ask
            # again a little later, not in a tight loop.
            log.warning("pull request ended by the server", reason=msg.headers)
            self._pause_until = time.monotonic() + PAUSE_AFTER_REFUSAL_S
        else:
            self._arrived.set()  # expired while idle: next_batch asks again at once

    def _count_delivery(self) -> None:
        if not self._requests:
            return
        oldest = self._requests[0]
        oldest.remaining -= 1
        if oldest.remaining <= 0:
            self._requests.popleft()
