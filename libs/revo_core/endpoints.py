"""nats micro endpoints with revo's error contract, concurrency and cancellation.

nats-py awaits a subscription's callback before taking its next message, so a handler
that awaited the work itself would serialize every request of an endpoint. Each request
therefore runs in its own task, bounded by `max_in_flight` (beyond it: `overloaded`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.micro import ServiceConfig, add_service
from nats.micro.request import Request
from nats.micro.service import EndpointConfig, Service
from opentelemetry.trace import SpanKind, StatusCode

from revo_core import headers as h
from revo_core import metrics, tracing
from revo_core.bus import Bus
from revo_core.codec import decode, encode
from revo_core.db import DATABASE_AWAY
from revo_core.errors import InternalError, Overloaded, ServiceError
from revo_core.logging import get_logger
from revo_core.streaming import StreamReply, cancel_subject

log = get_logger("revo.endpoints")

RequestHandler = Callable[[Any], Awaitable[Any]]
StreamHandler = Callable[[Any], AsyncIterator[Any]]


class _StreamStopped(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Endpoints:
    """One micro service (visible to `$SRV.PING/INFO/STATS`) and its endpoints."""

    def __init__(
        self,
        bus: Bus,
        name: str,
        version: str = "0.1.0",
        description: str = "",
        max_in_flight: int = 1024,
        ping_interval: float = 2.0,
    ) -> None:
        self._bus = bus
        self._name = name
        self._version = version
        self._description = description
        self._max_in_flight = max_in_flight
        self._ping_interval = ping_interval
        self._service: Service | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        config = ServiceConfig(
            name=self._name, version=self._version, description=self._description
        )
        self._service = await add_service(self._bus.nc, config)

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    async def add(
        self,
        name: str,
        subject: str,
        request_type: type[Any],
        handler: RequestHandler,
        queue_group: str | None = None,
    ) -> None:
        """A request/reply endpoint: `handler(request) -> reply Struct`."""

        async def run(msg: Msg) -> None:
            request = decode(msg.data, request_type)
            reply = await handler(request)
            await msg.respond(encode(reply))

        await self._add_endpoint(name, subject, run, queue_group)

    async def add_stream(
        self,
        name: str,
        subject: str,
        request_type: type[Any],
        handler: StreamHandler,
        queue_group: str | None = None,
    ) -> None:
        """A streamed endpoint: `handler(request)` is an async generator of chunks."""

        async def run(msg: Msg) -> None:
            reply = StreamReply(self._bus, msg)
            try:
                await self._stream(name, reply, handler, decode(msg.data, request_type))
            except _StreamStopped as stopped:
                metrics.CANCELLED.labels(self._name, name, stopped.reason).inc()
                log.info("stream stopped early", endpoint=name, reason=stopped.reason)

        await self._add_endpoint(name, subject, run, queue_group)

    async def _add_endpoint(
        self,
        name: str,
        subject: str,
        run: Callable[[Msg], Awaitable[None]],
        queue_group: str | None,
    ) -> None:
        assert self._service is not None, "start() first"

        async def on_request(request: Request) -> None:
            msg = request._msg
            if len(self._tasks) >= self._max_in_flight:
                busy = Overloaded(f"{self._name} is at {len(self._tasks)} requests")
                await _respond_error(self._bus.nc, msg, busy)
                metrics.REQUESTS.labels(self._name, name, "overloaded").inc()
                return
            task = asyncio.create_task(self._handle(name, subject, msg, run))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        await self._service.add_endpoint(
            EndpointConfig(name=name, subject=subject, handler=on_request, queue_group=queue_group)
        )

    async def _handle(
        self, name: str, subject: str, msg: Msg, run: Callable[[Msg], Awaitable[None]]
    ) -> None:
        started = time.perf_counter()
        outcome = "ok"
        in_flight = metrics.IN_FLIGHT.labels(self._name, name)
        in_flight.inc()
        with tracing.process_span(subject, msg.headers, kind=SpanKind.SERVER) as span:
            try:
                await run(msg)
            except ServiceError as exc:
                outcome = exc.code.value
                span.set_status(StatusCode.ERROR, str(exc))
                log.info("request rejected", endpoint=name, code=outcome, error=exc.message)
                await _respond_error(self._bus.nc, msg, exc)
            except DATABASE_AWAY as exc:
                outcome = "overloaded"
                span.record_exception(exc)
                log.warning("database unavailable", endpoint=name, error=type(exc).__name__)
                away = Overloaded(f"a database {self._name} needs is unavailable; retry shortly")
                await _respond_error(self._bus.nc, msg, away)
            except Exception as exc:
                outcome = "internal"
                span.record_exception(exc)
                span.set_status(StatusCode.ERROR, repr(exc))
                log.exception("request failed", endpoint=name)
                # The exception's words stay in the log: the caller gets where to look.
                trace_id, _ = tracing.current_ids()
                internal = InternalError(f"internal error in {self._name} (trace {trace_id})")
                await _respond_error(self._bus.nc, msg, internal)
            finally:
                in_flight.dec()
                metrics.REQUESTS.labels(self._name, name, outcome).inc()
                metrics.REQUEST_SECONDS.labels(self._name, name).observe(
                    time.perf_counter() - started
                )

    async def _stream(
        self, name: str, reply: StreamReply, handler: StreamHandler, request: Any
    ) -> None:
        """Send every chunk, then an empty end; stop the handler if the caller leaves."""
        producer = asyncio.create_task(self._produce(reply, handler(request)))
        stopper = asyncio.create_task(self._watch_caller(reply))
        done, _ = await asyncio.wait({producer, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if producer in done:
            stopper.cancel()
            await asyncio.gather(stopper, return_exceptions=True)
            producer.result()
            return
        producer.cancel()
        await asyncio.gather(producer, return_exceptions=True)
        raise _StreamStopped(stopper.result())

    async def _produce(self, reply: StreamReply, chunks: AsyncIterator[Any]) -> None:
        # aclosing: a cancelled stream closes the handler at once, so it can free its work.
        async with aclosing(chunks) as stream:
            async for chunk in stream:
                await reply.send(chunk)
        await reply.send_end()

    async def _watch_caller(self, reply: StreamReply) -> str:
        """Return why the stream must stop: a cancel message, a gone caller, the deadline."""
        cancelled = asyncio.Event()

        async def on_cancel(_: Msg) -> None:
            cancelled.set()

        sub = await self._bus.nc.subscribe(cancel_subject(reply.inbox), cb=on_cancel)
        try:
            while True:
                timeout = self._ping_interval
                if reply.deadline is not None:
                    timeout = min(timeout, max(reply.deadline - time.time(), 0.0))
                try:
                    await asyncio.wait_for(cancelled.wait(), timeout=timeout)
                    return "caller_cancel"
                except TimeoutError:
                    pass
                if reply.deadline is not None and time.time() >= reply.deadline:
                    return "deadline"
                if not await reply.caller_alive():
                    return "caller_gone"
        finally:
            await sub.unsubscribe()

    async def stop(self, grace: float = 30.0) -> None:
        """Stop taking requests, let in-flight ones finish (up to `grace`), cancel the rest."""
        if self._service is not None:
            await self._service.stop()
        if self._tasks:
            log.info("draining in-flight requests", count=len(self._tasks))
            _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)


async def _respond_error(nc: Client, msg: Msg, error: ServiceError) -> None:
    if not msg.reply:
        return
    headers = {
        h.ERROR_CODE: error.code.value,
        h.ERROR_MESSAGE: error.message[:1024],
        h.STREAM: h.STREAM_END,
    }
    await nc.publish(msg.reply, encode(error.to_error()), headers=headers)
