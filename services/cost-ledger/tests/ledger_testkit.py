"""Shared helpers of the cost-ledger tests: usage events, publishing, reading Postgres."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

import asyncpg
import msgspec

from revo_contracts import subjects
from revo_contracts.ledger import BudgetRequest, BudgetStatus
from revo_contracts.usage import UsageEvent
from revo_core import headers as h
from revo_core.bus import Bus

# USD per 1M tokens (input, output) of prices_for_tests.yaml; local per-token prices derived
# by hand: 3.60 $/h / 3600 s / 1000 tok/s = 1e-6 $ per output token, 1e-7 per input token.
PRICES_PER_1M = {
    ("openai", "cloud-ref"): (Decimal("1.00"), Decimal("4.00")),
    ("openai", "cloud-big"): (Decimal("10.00"), Decimal("30.00")),
    ("openai", "cloud-odd"): (Decimal("0.123457"), Decimal("0.000001")),
    ("local", "local-small"): (Decimal("0.1"), Decimal("1")),
    # local_default: 0.36 $/h at 1000 tok/s for both kinds of token
    ("local", "some-local-model"): (Decimal("0.1"), Decimal("0.1")),
}
REFERENCE = PRICES_PER_1M[("openai", "cloud-ref")]


def new_tenant(prefix: str = "t") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def usage_event(tenant: str, **fields: Any) -> UsageEvent:
    event_id = fields.pop("event_id", None) or f"ev-{uuid.uuid4().hex}"
    fields.setdefault("request_id", event_id)
    fields.setdefault("model", "local-small")
    fields.setdefault("provider", "local")
    fields.setdefault("created_at", time.time())
    return UsageEvent(event_id=event_id, tenant=tenant, **fields)


def expected_cost(event: UsageEvent) -> Decimal:
    """USD, exact, from the test table's prices (an independent reckoning)."""
    prices = PRICES_PER_1M.get((event.provider, event.model))
    if prices is None:
        return Decimal(0)
    return (event.prompt_tokens * prices[0] + event.completion_tokens * prices[1]) / 10**6


def expected_cloud_cost(event: UsageEvent) -> Decimal:
    return (event.prompt_tokens * REFERENCE[0] + event.completion_tokens * REFERENCE[1]) / 10**6


async def publish(bus: Bus, events: Iterable[UsageEvent], msg_id: str | None = "event_id") -> None:
    """Publish to USAGE without waiting for each ack; `msg_id="event_id"` sends the event id
    as Nats-Msg-Id (as inference does), a callable makes one per event, None sends none."""
    pending = []
    for event in events:
        headers = None
        if msg_id == "event_id":
            headers = {h.MSG_ID: event.event_id}
        elif callable(msg_id):
            headers = {h.MSG_ID: msg_id(event)}
        data = msgspec.json.encode(event)
        pending.append(
            await bus.js.publish_async(subjects.usage(event.tenant), data, headers=headers)
        )
        if len(pending) >= 2000:
            await asyncio.gather(*pending)
            pending.clear()
    await asyncio.gather(*pending)


async def publish_raw(bus: Bus, subject: str, data: bytes) -> None:
    await bus.js.publish(subject, data)


async def recorded(dsn: str, tenant: str) -> dict[str, Any]:
    """Count and sums of a tenant's usage rows, money in USD (exact)."""
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(
            "SELECT count(*) AS events, coalesce(sum(cost_pico), 0) AS cost_pico, "
            "coalesce(sum(cloud_pico), 0) AS cloud_pico, "
            "coalesce(sum(prompt_tokens + completion_tokens), 0) AS tokens "
            "FROM ledger.usage WHERE tenant = $1",
            tenant,
        )
        daily = await conn.fetchrow(
            "SELECT coalesce(sum(events), 0) AS events, coalesce(sum(cost_pico), 0) AS cost_pico "
            "FROM ledger.usage_daily WHERE tenant = $1",
            tenant,
        )
    finally:
        await conn.close()
    return {
        "events": row["events"],
        "cost": Decimal(row["cost_pico"]) / 10**12,
        "cloud": Decimal(row["cloud_pico"]) / 10**12,
        "tokens": int(row["tokens"]),
        "daily_events": int(daily["events"]),
        "daily_cost": Decimal(daily["cost_pico"]) / 10**12,
    }


async def wait_recorded(dsn: str, tenant: str, events: int, timeout: float = 30.0) -> dict:
    end = time.monotonic() + timeout
    seen = await recorded(dsn, tenant)
    while seen["events"] < events and time.monotonic() < end:
        await asyncio.sleep(0.05)
        seen = await recorded(dsn, tenant)
    return seen


async def set_budget(bus: Bus, tenant: str, limit_micros: int, **fields: Any) -> BudgetStatus:
    request = BudgetRequest(tenant=tenant, action="set", limit_micros=limit_micros, **fields)
    return await bus.request(subjects.LEDGER_BUDGET, request, BudgetStatus)


async def get_budget(bus: Bus, tenant: str, **fields: Any) -> BudgetStatus:
    return await bus.request(
        subjects.LEDGER_BUDGET, BudgetRequest(tenant=tenant, **fields), BudgetStatus
    )
