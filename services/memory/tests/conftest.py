"""Fixtures of the memory tests: a NATS of their own with an inference service that serves
only the real embedding model (no chat engine to load), one memory service most tests
share, and a world whose embedding service the test controls (to take it down)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from memory_testkit import SUMMARY_RETENTION_S

from revo_core.bus import Bus
from revo_core.embedded.nats_server import NatsServer
from revo_core.embedded.service_process import ServiceProcess
from revo_core.testing.fixtures import (
    ServiceFactory,
    embed_only_inference,
    nats_server_of,
    operator_bus,
)


@pytest.fixture(scope="session")
def memory_nats(revo_tmp: Path, bus_authority) -> Iterator[NatsServer]:
    server = nats_server_of(revo_tmp / "nats-memory", bus_authority)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def embed_inference(memory_nats, otlp_receiver, revo_tmp: Path) -> Iterator[ServiceProcess]:
    process = embed_only_inference(memory_nats.url, revo_tmp / "memory", otlp_receiver.endpoint)
    yield process
    process.stop()


@pytest.fixture(scope="session")
def memory(memory_nats, embed_inference, memory_factory: ServiceFactory) -> ServiceProcess:
    """The memory service most tests share."""
    return memory_factory.start(
        memory_nats.url,
        "memory",
        REVO_MEMORY_RETENTION_S=f'{{"summary": {SUMMARY_RETENTION_S}}}',
        REVO_MEMORY_PURGE_EVERY_S="0.5",
        REVO_MEMORY_MAX_TOP_K="50",
        REVO_MEMORY_MAX_TEXT_CHARS="2000",
    )


@pytest.fixture
async def mbus(memory_nats: NatsServer, memory: ServiceProcess) -> AsyncIterator[Bus]:
    connection = await operator_bus(memory_nats, "pytest-memory")
    yield connection
    await connection.close()
