"""Fixtures of the cost-ledger tests: a NATS of their own (no other test's usage events
reach these ledgers), one ledger shared by most tests, fresh ones for kill and reload."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from revo_core.bus import Bus
from revo_core.embedded.nats_server import NatsServer
from revo_core.embedded.service_process import ServiceProcess
from revo_core.jetstream import ensure_streams
from revo_core.testing.fixtures import nats_server_of, operator_bus

TEST_PRICES = Path(__file__).with_name("prices_for_tests.yaml")


@pytest.fixture(scope="session")
def ledger_nats(revo_tmp: Path, bus_authority) -> Iterator[NatsServer]:
    server = nats_server_of(revo_tmp / "nats-ledger", bus_authority)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def test_prices_file(revo_tmp: Path) -> Path:
    path = revo_tmp / "ledger-prices.yaml"
    shutil.copy(TEST_PRICES, path)
    return path


@pytest.fixture(scope="session")
def ledger(ledger_nats, ledger_factory, test_prices_file) -> ServiceProcess:
    """The ledger most tests share (default policy: deny)."""
    return ledger_factory.start(
        ledger_nats.url, "ledger", REVO_COST_LEDGER_PRICES_FILE=str(test_prices_file)
    )


@pytest.fixture
async def ledger_bus(ledger_nats: NatsServer) -> AsyncIterator[Bus]:
    connection = await operator_bus(ledger_nats, "pytest-ledger")
    await ensure_streams(connection.js)
    yield connection
    await connection.close()


@pytest.fixture
def own_nats(revo_tmp: Path, request, bus_authority) -> Iterator[NatsServer]:
    """A NATS for one test, whose ledgers nobody else shares."""
    server = nats_server_of(revo_tmp / f"nats-{request.node.name[:40]}", bus_authority)
    yield server
    server.stop()


@pytest.fixture
async def own_bus(own_nats: NatsServer) -> AsyncIterator[Bus]:
    connection = await operator_bus(own_nats, "pytest-own")
    await ensure_streams(connection.js)
    yield connection
    await connection.close()
