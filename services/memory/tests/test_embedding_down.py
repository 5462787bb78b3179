"""When inference.embed is down or failing, memory answers upstream_error and writes nothing.

The memory service here runs on a NATS of its own, where the test itself answers
inference.embed (same model name and dimension as the real one, vectors from a hash) until
it stops answering or answers errors."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np
import pytest
from memory_testkit import new_tenant, recall, rows_of, store

from revo_contracts import subjects
from revo_contracts.errors import Error, ErrorCode
from revo_contracts.inference import EmbedRequest, EmbedResponse, Usage
from revo_contracts.memory import MemoryScope
from revo_core import headers as h
from revo_core.bus import Bus
from revo_core.codec import decode, encode
from revo_core.embedded.nats_server import NatsServer
from revo_core.errors import UpstreamError
from revo_core.testing.fixtures import nats_server_of, operator_bus

MODEL, DIMENSIONS = "all-minilm-l6-v2", 384


class FakeEmbedder:
    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.failing = False
        self.sub = None

    async def start(self) -> None:
        self.sub = await self.bus.nc.subscribe(
            subjects.INFERENCE_EMBED, queue=subjects.INFERENCE_QUEUE_GROUP, cb=self._answer
        )

    async def stop(self) -> None:
        await self.sub.unsubscribe()
        await self.bus.nc.flush()

    async def _answer(self, msg) -> None:
        if self.failing:
            error = Error(code=ErrorCode.OVERLOADED, message="inference is at 256 requests")
            headers = {h.ERROR_CODE: error.code.value, h.ERROR_MESSAGE: error.message}
            await self.bus.nc.publish(msg.reply, encode(error), headers=headers)
            return
        request = decode(msg.data, EmbedRequest)
        vectors = [_vector(text) for text in request.texts]
        reply = EmbedResponse(model=MODEL, dimensions=DIMENSIONS, embeddings=vectors,
                              usage=Usage())  # fmt: skip
        await msg.respond(encode(reply))


def _vector(text: str) -> list[float]:
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")
    vector = np.random.default_rng(seed).normal(size=DIMENSIONS)
    return (vector / np.linalg.norm(vector)).tolist()


@pytest.fixture(scope="module")
def down_nats(revo_tmp: Path, bus_authority) -> Iterator[NatsServer]:
    server = nats_server_of(revo_tmp / "nats-memory-down", bus_authority)
    yield server
    server.stop()


@pytest.fixture(scope="module")
async def fake_world(down_nats, memory_factory) -> AsyncIterator[tuple[Bus, FakeEmbedder]]:
    bus = await operator_bus(down_nats, "pytest-fake-embed")
    fake = FakeEmbedder(bus)
    await fake.start()
    # In a thread: the fake answers the memory service's start-up probe from this loop.
    await asyncio.to_thread(
        memory_factory.start, down_nats.url, "memory-embed-down", REVO_MEMORY_EMBED_TIMEOUT_S="2"
    )
    yield bus, fake
    await bus.close()


async def test_failing_or_missing_embeddings_give_upstream_error_and_write_nothing(
    fake_world, postgres
):
    bus, fake = fake_world
    working = MemoryScope(tenant=new_tenant())
    broken = MemoryScope(tenant=new_tenant())
    assert (await store(bus, working, "The fake embedder answers.")).stored[0].action == "created"

    fake.failing = True
    with pytest.raises(UpstreamError) as failing:
        await store(bus, broken, "Stored while inference is overloaded.", "And a second one.")
    await fake.stop()
    with pytest.raises(UpstreamError) as missing:
        await store(bus, broken, "Stored while inference is gone.")
    with pytest.raises(UpstreamError):
        await recall(bus, broken, "anything at all")

    assert failing.value.details == {"upstream": "inference.embed", "cause": "overloaded"}
    assert "no inference replica answers inference.embed" in missing.value.message
    assert await rows_of(postgres.dsn, broken.tenant) == 0
    assert await rows_of(postgres.dsn, working.tenant) == 2  # the memory and its version
