"""kill -9 of the integrations service while it handles a failing CI event: after the
restart, still exactly one run.

The kill lands at a known point: the test holds a lock on one of the trigger's tables, so
the service stops there (before claiming the failure, or after the run was submitted but
before it was recorded and the event acked), and is killed while it waits. The killed
process's database session is ended too (Postgres would otherwise finish its statement once
the lock is released, which a real crash mid-statement does not do)."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest
from ci_trigger_testkit import (
    ci_event,
    new_tenant,
    prepare_runs_streams,
    publish,
    set_policy,
    stream_messages,
    submitted,
    wait_settled,
)

from revo_contracts import subjects
from revo_contracts.streams import CI_EVENTS, RUN_EVENTS
from revo_core.testing.fixtures import nats_server_of, operator_bus
from revo_core.testing.metrics import metric_value
from revo_integrations.ci_trigger import CONSUMER, ci_run_id

ACK_WAIT = {"REVO_INTEGRATIONS_CI_ACK_WAIT_S": "2"}


async def wait_blocked_on(conn: asyncpg.Connection, table: str, timeout: float = 30.0) -> int:
    """The pid of the session that waits for the test's lock on `table`."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        # pg_locks, not pg_stat_activity's query text: that can still show the session's
        # previous statement while it waits for the next one's lock.
        pid = await conn.fetchval(
            "SELECT l.pid FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
            "WHERE NOT l.granted AND c.relname = $1 "
            "AND c.relnamespace = 'integrations'::regnamespace",
            table,
        )
        if pid is not None:
            return pid
        await asyncio.sleep(0.05)
    raise AssertionError(f"the service never reached {table}")


async def recorded(pool: asyncpg.Pool, run_id: str) -> bool:
    return bool(
        await pool.fetchval("SELECT true FROM integrations.ci_runs WHERE run_id = $1", run_id)
    )


@pytest.mark.parametrize("stop_at", ["ci_failures", "ci_runs"])
async def test_a_service_killed_mid_event_submits_exactly_one_run_after_restart(
    stop_at, revo_tmp, bus_authority, integrations_factory, postgres, pg
):
    # A NATS of its own: no other integrations replica shares the durable consumer.
    server = nats_server_of(revo_tmp / f"nats-ci-kill-{stop_at}", bus_authority)
    bus = await operator_bus(server, "pytest-ci-kill")
    lock = await asyncpg.connect(postgres.dsn)
    try:
        await prepare_runs_streams(bus)
        first = integrations_factory.start(server.url, f"integrations-kill-{stop_at}", **ACK_WAIT)
        tenant = new_tenant("kill")
        await set_policy(bus, tenant)
        event = ci_event(tenant)
        run_id = ci_run_id(tenant, event.failure_signature(), event.event_id)

        holding = lock.transaction()
        await holding.start()
        await lock.execute(f"LOCK TABLE integrations.{stop_at} IN SHARE MODE")
        seq = await publish(bus, event)
        orphan = await wait_blocked_on(lock, stop_at)
        submitted_before_kill = await submitted(bus, tenant)
        first.kill()
        assert await lock.fetchval("SELECT pg_terminate_backend($1)", orphan)
        await holding.rollback()

        # Killed where the test meant: the run submitted or not yet, the event unacked.
        assert len(submitted_before_kill) == (1 if stop_at == "ci_runs" else 0)
        assert not await recorded(pg, run_id)
        info = await bus.js.consumer_info(CI_EVENTS.name, CONSUMER)
        assert info.num_ack_pending == 1 and info.ack_floor.stream_seq < seq

        second = integrations_factory.start(
            server.url, f"integrations-kill-{stop_at}-2", **ACK_WAIT
        )
        await wait_settled(bus, seq)
        assert await recorded(pg, run_id)
        [run] = await submitted(bus, tenant)
        assert run.run_id == run_id
        queued = await stream_messages(bus, RUN_EVENTS.name, subjects.runs_events(tenant, run_id))
        assert len(queued) == 1
        # The restarted service submitted again (the same run id, so RUNS kept one copy).
        assert metric_value(second, "revo_integrations_ci_runs_total", outcome="submitted") == 1
        second.stop()
    finally:
        await lock.close()
        await bus.close()
        server.stop()
