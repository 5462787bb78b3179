"""Fixtures of the integrations tests: a NATS of their own, one integrations service that
most tests share, and an operator's connection to configure it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from revo_core.bus import Bus
from revo_core.embedded.nats_server import NatsServer
from revo_core.embedded.service_process import ServiceProcess
from revo_core.testing.fixtures import nats_server_of, operator_bus


@pytest.fixture(scope="session")
def integrations_nats(revo_tmp: Path, bus_authority) -> Iterator[NatsServer]:
    server = nats_server_of(revo_tmp / "nats-integrations", bus_authority)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def integrations(integrations_nats, integrations_factory) -> ServiceProcess:
    """The integrations service most tests share."""
    return integrations_factory.start(integrations_nats.url, "integrations")


@pytest.fixture
async def integrations_bus(integrations_nats: NatsServer) -> AsyncIterator[Bus]:
    connection = await operator_bus(integrations_nats, "pytest-integrations")
    yield connection
    await connection.close()


@pytest.fixture
async def pg(postgres) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(postgres.dsn, min_size=1, max_size=2)
    yield pool
    await pool.close()
