"""The embedded infrastructure is the real thing: JetStream on, Postgres 16 with pgvector."""

from __future__ import annotations

import pytest

from revo_core.embedded.nats_server import EmbeddedProcessError, NatsServer


async def test_the_nats_fixture_has_jetstream_enabled(bus):
    info = await bus.js.account_info()
    assert info.limits is not None


def test_postgres_is_16_with_pgvector(postgres):
    assert postgres.psql("SHOW server_version").startswith("16.")
    distance = postgres.psql("SELECT '[1,2,3]'::vector <-> '[1,2,5]'::vector").strip()
    assert float(distance) == 2.0


def test_postgres_listens_on_its_tcp_port_with_the_revo_database(postgres):
    assert postgres.dsn.endswith(f":{postgres.port}/revo")
    assert postgres.psql("SELECT current_database()").strip() == "revo"


def test_a_nats_server_on_a_taken_port_fails_with_its_log(revo_tmp, nats_server):
    with pytest.raises(EmbeddedProcessError, match="did not become ready"):
        NatsServer(revo_tmp / "clash", port=nats_server.port).start(timeout=5)
