"""Exactly once: 10,000 events with republished duplicates and a ledger killed mid-way add
up to the expected sums, to the cent and below."""

from __future__ import annotations

import asyncio
import random
import time

import asyncpg
from ledger_testkit import (
    expected_cloud_cost,
    expected_cost,
    new_tenant,
    publish,
    recorded,
    usage_event,
    wait_recorded,
)

from revo_contracts.streams import USAGE
from revo_core.testing.metrics import metric_value
from revo_cost_ledger.ingest import CONSUMER

EVENTS = 10_000
MODELS = [
    ("local", "local-small"),
    ("local", "some-local-model"),
    ("openai", "cloud-ref"),
    ("openai", "cloud-big"),
    ("openai", "cloud-odd"),
]


def workload(tenants: list[str]) -> list:
    rng = random.Random(5)
    events = []
    for i in range(EVENTS):
        provider, model = MODELS[i % len(MODELS)]
        events.append(
            usage_event(
                tenants[i % len(tenants)],
                event_id=f"eo-{tenants[0]}-{i:05d}",
                provider=provider,
                model=model,
                prompt_tokens=rng.randint(0, 4000),
                completion_tokens=rng.randint(0, 1500),
                run_id=f"run-{i % 97}",
            )
        )
    return events


async def count_rows(dsn: str, tenants: list[str]) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(
            "SELECT count(*) FROM ledger.usage WHERE tenant = ANY($1)", tenants
        )
    finally:
        await conn.close()


async def test_duplicates_and_a_killed_ledger_neither_lose_nor_double_an_event(
    own_nats, own_bus, ledger_factory, test_prices_file, postgres
):
    tenants = [new_tenant("eo") for _ in range(3)]
    events = workload(tenants)
    await publish(own_bus, events)
    prices = {"REVO_COST_LEDGER_PRICES_FILE": str(test_prices_file)}
    # The first is slowed down (small batches, one writer) so that the kill lands mid-way.
    slow = {"REVO_COST_LEDGER_BATCH_SIZE": "100", "REVO_COST_LEDGER_WRITERS": "1"}
    first = ledger_factory.start(own_nats.url, "ledger-eo-1", **prices, **slow)
    done = 0
    while done < 2_000:
        await asyncio.sleep(0.01)
        done = await count_rows(postgres.dsn, tenants)
    first.kill()  # SIGKILL: batches in flight are neither acked nor (maybe) committed
    assert await count_rows(postgres.dsn, tenants) < EVENTS, "the kill came too late"

    # Republished while it is down: a new Nats-Msg-Id gets past JetStream's dedupe; the
    # same one does not. Both must leave the totals alone.
    duplicates = random.Random(7).sample(events, 2_500)
    await publish(own_bus, duplicates[:2_000], msg_id=lambda e: f"again-{e.event_id}")
    await publish(own_bus, duplicates[2_000:])
    # The second writes several batches at once (its defaults), redeliveries among them.
    second = ledger_factory.start(own_nats.url, "ledger-eo-2", **prices)

    for tenant in tenants:
        mine = [e for e in events if e.tenant == tenant]
        seen = await wait_recorded(postgres.dsn, tenant, len(mine), timeout=60)
        assert seen["events"] == len(mine)
        assert seen["cost"] == sum(expected_cost(e) for e in mine)
        assert seen["cloud"] == sum(expected_cloud_cost(e) for e in mine)
        assert seen["tokens"] == sum(e.prompt_tokens + e.completion_tokens for e in mine)
        assert (seen["daily_events"], seen["daily_cost"]) == (seen["events"], seen["cost"])
    assert done >= 2_000
    await wait_all_acked(own_bus)
    # The second ledger saw at least the 2,000 republished events, and recorded none twice.
    assert metric_value(second, "revo_ledger_usage_events_total", outcome="duplicate") >= 2_000
    # Nothing came after the last wait: the totals stay as they are.
    assert [await recorded(postgres.dsn, t) for t in tenants] == [
        await recorded(postgres.dsn, t) for t in tenants
    ]


async def wait_all_acked(bus, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        info = await bus.js.consumer_info(USAGE.name, CONSUMER)
        if info.num_pending == 0 and info.num_ack_pending == 0:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"deliveries left unacked: {info}")
