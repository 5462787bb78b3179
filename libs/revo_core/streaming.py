"""Streamed request/reply over core NATS: one request in, a stream of chunks out.

Wire protocol:
- the caller publishes the request with a private reply inbox and a `Revo-Deadline`;
- the server publishes each chunk to the inbox as a plain message (no headers: they cost
  more to build and parse than the chunk itself), then one empty `Revo-Stream: end`
  message whose `Revo-Seq` is the number of chunks sent, so a lost chunk is noticed; an
  error ends the stream instead, with the micro error headers;
- while streaming, the server pings the inbox with a request; "no responders" means the
  caller is gone, so the server stops the work;
- a caller that stops early publishes to `<inbox>.cancel`, which the server watches;
- the same pings tell the caller that the server is alive: a stream that hears nothing at
  all (no chunk, no ping) for `silence_timeout` has lost its server (killed, restarted).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any, Generic, TypeVar

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import NoRespondersError
from opentelemetry.trace import Span, StatusCode

from revo_core import headers as h
from revo_core import tracing
from revo_core.bus import Bus, raise_if_error
from revo_core.codec import decode, encode
from revo_core.errors import InternalError, InvalidRequest, RequestTimeout, UpstreamError

T = TypeVar("T")


def cancel_subject(inbox: str) -> str:
    return f"{inbox}.cancel"


class ChunkStream(Generic[T]):
    """Async iterator over the chunks of one streamed request.

    Use it as `async with stream_request(...) as chunks: async for chunk in chunks: ...`;
    leaving the block early cancels the work on the server.
    """

    def __init__(
        self,
        bus: Bus,
        subject: str,
        message: Any,
        chunk_type: type[T],
        timeout: float,
        idle_timeout: float,
        silence_timeout: float,
    ) -> None:
        self._bus = bus
        self._subject = subject
        self._message = message
        self._chunk_type = chunk_type
        self._timeout = timeout
        self._idle_timeout = idle_timeout
        self._silence_timeout = silence_timeout
        self._last_heard = time.monotonic()
        self._inbox = bus.nc.new_inbox()
        self._queue: asyncio.Queue[Msg] = asyncio.Queue()
        self._sub: Subscription | None = None
        self._span: Span | None = None
        self._deadline = 0.0
        self._received = 0
        self._ended = False

    async def __aenter__(self) -> ChunkStream[T]:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def start(self) -> None:
        payload = self._bus.encode(self._message)
        self._span = tracing.start_client_span(self._subject)
        self._deadline = time.time() + self._timeout
        self._sub = await self._bus.nc.subscribe(self._inbox, cb=self._on_message)
        headers = tracing.inject({h.DEADLINE: str(int(self._deadline * 1000))}, self._span)
        await self._bus.nc.publish(self._subject, payload, reply=self._inbox, headers=headers)

    async def _on_message(self, msg: Msg) -> None:
        self._last_heard = time.monotonic()
        # Pings are answered here, not in __anext__, so a caller that is slow to iterate
        # is not mistaken for a caller that is gone.
        if (msg.headers or {}).get(h.STREAM) == h.STREAM_PING:
            if msg.reply:
                await self._bus.nc.publish(msg.reply, b"")
            return
        self._queue.put_nowait(msg)

    def __aiter__(self) -> AsyncIterator[T]:
        return self

    async def __anext__(self) -> T:
        if self._ended:
            raise StopAsyncIteration
        msg = await self._next_message()
        if not msg.headers:  # the hot path: a plain chunk
            self._received += 1
            return decode(msg.data, self._chunk_type)
        self._ended = True
        try:
            raise_if_error(msg)
            self._check_count(msg.headers)
        except Exception as exc:
            if self._span is not None:
                self._span.set_status(StatusCode.ERROR, str(exc))
            await self.aclose()
            raise
        raise StopAsyncIteration

    async def _next_message(self) -> Msg:
        if not self._queue.empty():
            return self._queue.get_nowait()
        waiting_since = time.monotonic()
        while True:
            reason, wait = self._nearest_limit(waiting_since)
            try:
                async with asyncio.timeout(max(wait, 0.0)):
                    return await self._queue.get()
            except TimeoutError:
                if reason == "silence" and self._heard_recently():
                    continue  # a ping came meanwhile: the server is alive, keep waiting
                await self.aclose()
                raise self._limit_error(reason) from None

    def _nearest_limit(self, waiting_since: float) -> tuple[str, float]:
        now = time.monotonic()
        limits = {
            "deadline": self._deadline - time.time(),
            "idle": waiting_since + self._idle_timeout - now,
            "silence": self._last_heard + self._silence_timeout - now,
        }
        return min(limits.items(), key=lambda item: item[1])

    def _heard_recently(self) -> bool:
        return time.monotonic() < self._last_heard + self._silence_timeout

    def _limit_error(self, reason: str) -> Exception:
        if reason == "silence":
            return UpstreamError(
                f"the server of {self._subject} went silent for {self._silence_timeout:.0f} s "
                "(stopped or restarted); the request did not complete"
            )
        return RequestTimeout(f"stream on {self._subject} timed out ({reason})")

    def _check_count(self, headers: dict[str, str]) -> None:
        sent = int(headers.get(h.STREAM_SEQ, self._received))
        if sent != self._received:
            raise InternalError(
                f"stream on {self._subject} lost {sent - self._received} of {sent} chunks"
            )

    async def aclose(self) -> None:
        """Stop listening; if the server was still streaming, tell it to stop."""
        if self._sub is None:
            return
        sub, self._sub = self._sub, None
        if self._span is not None:
            self._span.end()
        if self._bus.nc.is_closed:
            return  # the connection took the subscription with it
        if not self._ended:
            await self._bus.nc.publish(cancel_subject(self._inbox), b"")
        await sub.unsubscribe()


def stream_request(
    bus: Bus,
    subject: str,
    message: Any,
    chunk_type: type[T],
    timeout: float = 120.0,
    idle_timeout: float = 30.0,
    silence_timeout: float = 10.0,
) -> ChunkStream[T]:
    """Send `message` on `subject` and iterate the streamed reply.

    `timeout` bounds the whole stream, `idle_timeout` the wait for the next chunk, and
    `silence_timeout` the time without any sign of life from the server (it pings every
    2 s by default), after which the server is taken for dead: UpstreamError."""
    return ChunkStream(bus, subject, message, chunk_type, timeout, idle_timeout, silence_timeout)


class StreamReply:
    """Server side of one streamed reply: counted chunks, one end, liveness checks."""

    def __init__(self, bus: Bus, msg: Msg) -> None:
        if not msg.reply:
            raise InvalidRequest("a streamed request needs a reply inbox")
        self._bus = bus
        self.inbox = msg.reply
        self._seq = 0
        deadline_ms = (msg.headers or {}).get(h.DEADLINE)
        self.deadline = int(deadline_ms) / 1000 if deadline_ms else None

    async def send(self, chunk: Any) -> None:
        self._seq += 1
        await self._bus.nc.publish(self.inbox, encode(chunk))

    async def send_end(self) -> None:
        """An empty end message: the caller's iteration stops after the last chunk."""
        headers = {h.STREAM: h.STREAM_END, h.STREAM_SEQ: str(self._seq)}
        await self._bus.nc.publish(self.inbox, b"", headers=headers)

    async def caller_alive(self, timeout: float = 2.0) -> bool:
        """Ping the caller's inbox; only an explicit "no responders" counts as gone."""
        try:
            await self._bus.nc.request(
                self.inbox, b"", timeout=timeout, headers={h.STREAM: h.STREAM_PING}
            )
        except NoRespondersError:
            return False
        except Exception:  # a timeout or a slow caller is not proof that it left
            return True
        return True
