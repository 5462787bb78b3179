"""revo_core.db: a pool that waits for Postgres, and a readiness probe that notices it going."""

from __future__ import annotations

import asyncio

import pytest

from revo_core.db import DatabaseUnavailable, DatabaseWatch, apply_schema, connect_pool
from revo_core.embedded.ports import free_port
from revo_core.embedded.postgres import SETTINGS, Postgres


async def test_unreachable_postgres_is_a_clear_error_without_the_password():
    with pytest.raises(DatabaseUnavailable, match="cannot reach Postgres") as raised:
        await connect_pool(
            f"postgresql://postgres:secret@127.0.0.1:{free_port()}/x", attempts=2, wait_s=0.1
        )
    assert "secret" not in str(raised.value)


async def test_the_watch_sees_postgres_stop(revo_tmp):
    server = Postgres(revo_tmp / "pg-watch", free_port()).start()
    try:
        pool = await connect_pool(server.dsn, max_size=2)
        await apply_schema(pool, "CREATE SCHEMA IF NOT EXISTS probe;")
        watch = DatabaseWatch(pool, every_s=0.1).start()
        await asyncio.sleep(0.3)
        assert watch.ok
        await asyncio.to_thread(server.stop)
        for _ in range(50):
            if not watch.ok:
                break
            await asyncio.sleep(0.1)
        assert not watch.ok
        watch.stop()
        pool.terminate()
    finally:
        server.stop()


def test_the_embedded_postgres_runs_with_revo_s_settings(postgres):
    shown = {name: postgres.psql(f"SHOW {name}").strip() for name in SETTINGS}
    assert shown == SETTINGS
    assert shown["shared_buffers"] == "1GB"  # what the memory service's index needs
