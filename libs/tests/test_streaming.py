"""Streamed requests: ordered chunks, typed errors, and every way a caller can leave."""

from __future__ import annotations

import asyncio

import msgspec
import pytest

from revo_core.endpoints import Endpoints
from revo_core.errors import BusUnavailable, InvalidRequest, RequestTimeout, UpstreamError
from revo_core.streaming import stream_request
from revo_core.testing.fixtures import operator_bus


class Count(msgspec.Struct):
    to: int
    pause: float = 0.0
    fail_at: int | None = None


class Number(msgspec.Struct):
    n: int


class Counter:
    """A streamed endpoint that records how each of its streams ended."""

    def __init__(self) -> None:
        self.closed = asyncio.Event()

    async def count(self, request: Count):
        try:
            for n in range(request.to):
                if n == request.fail_at:
                    raise UpstreamError(f"gave up at {n}")
                await asyncio.sleep(request.pause)
                yield Number(n=n)
        finally:
            self.closed.set()


@pytest.fixture
async def counter(bus):
    service = Endpoints(bus, "counter", ping_interval=0.2)
    await service.start()
    counter = Counter()
    await service.add_stream("count", "test.count", Count, counter.count)
    yield counter
    await service.stop(grace=1)


async def test_chunks_arrive_in_order_and_the_stream_ends(bus, counter):
    async with stream_request(bus, "test.count", Count(to=50), Number) as numbers:
        received = [number.n async for number in numbers]

    assert received == list(range(50))


async def test_an_error_midway_arrives_after_the_chunks_before_it(bus, counter):
    received = []
    with pytest.raises(UpstreamError, match="gave up at 3"):
        async with stream_request(bus, "test.count", Count(to=9, fail_at=3), Number) as numbers:
            async for number in numbers:
                received.append(number.n)

    assert received == [0, 1, 2]


async def test_a_caller_that_breaks_off_stops_the_handler(bus, counter):
    async with stream_request(bus, "test.count", Count(to=1000, pause=0.05), Number) as numbers:
        async for number in numbers:
            if number.n == 2:
                break

    await asyncio.wait_for(counter.closed.wait(), timeout=2)


async def test_a_caller_that_vanishes_is_noticed_by_ping(nats_server, counter):
    caller = await operator_bus(nats_server, "vanishing")
    stream = stream_request(caller, "test.count", Count(to=1000, pause=0.05), Number)
    await stream.start()
    await anext(aiter(stream))
    await caller.nc.close()

    await asyncio.wait_for(counter.closed.wait(), timeout=3)


async def test_a_caller_past_its_deadline_gets_a_timeout_and_the_handler_stops(bus, counter):
    with pytest.raises(RequestTimeout):
        async with stream_request(
            bus, "test.count", Count(to=1000, pause=0.05), Number, timeout=0.5
        ) as numbers:
            async for _ in numbers:
                pass

    await asyncio.wait_for(counter.closed.wait(), timeout=2)


async def test_a_silent_server_is_an_idle_timeout(bus, counter):
    with pytest.raises(RequestTimeout, match="idle"):
        async with stream_request(
            bus, "test.count", Count(to=2, pause=5), Number, idle_timeout=0.3
        ) as numbers:
            async for _ in numbers:
                pass


async def test_streaming_to_a_subject_nobody_serves_is_bus_unavailable(bus):
    with pytest.raises(BusUnavailable):
        async with stream_request(bus, "test.nobody", Count(to=1), Number) as numbers:
            async for _ in numbers:
                pass


async def test_a_streamed_request_over_the_payload_limit_is_refused_before_sending(bus, counter):
    class Oversized(msgspec.Struct):
        to: int
        padding: str

    request = Oversized(to=1, padding="x" * (bus.nc.max_payload + 1))
    with pytest.raises(InvalidRequest, match="exceeds"):
        async with stream_request(bus, "test.count", request, Number) as numbers:
            async for _ in numbers:
                pass
