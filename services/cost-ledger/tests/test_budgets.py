"""Budgets: atomic reservations, holds that expire, settlements that count once, alerts
once per threshold per period (also across a restart)."""

from __future__ import annotations

import asyncio
import contextlib

import msgspec
import pytest
from ledger_testkit import get_budget, new_tenant, publish, set_budget, usage_event, wait_recorded

from revo_contracts import subjects
from revo_contracts.ledger import (
    BudgetAlert,
    Reservation,
    ReserveRequest,
    Settlement,
    SettleRequest,
)
from revo_core.errors import BudgetExceeded, InvalidRequest, NotFound
from revo_core.testing.metrics import metric_value


async def reserve(bus, tenant: str, **fields) -> Reservation:
    return await bus.request(
        subjects.LEDGER_RESERVE, ReserveRequest(tenant=tenant, **fields), Reservation
    )


async def settle(bus, tenant: str, reservation_id: str, **fields) -> Settlement:
    request = SettleRequest(tenant=tenant, reservation_id=reservation_id, **fields)
    return await bus.request(subjects.LEDGER_SETTLE, request, Settlement)


async def test_100_concurrent_reserves_on_two_replicas_grant_exactly_the_10_that_fit(
    own_nats, own_bus, ledger_factory, test_prices_file
):
    env = {"REVO_COST_LEDGER_PRICES_FILE": str(test_prices_file)}
    replicas = [ledger_factory.start(own_nats.url, f"ledger-reserve-{n}", **env) for n in (1, 2)]
    tenant = new_tenant()
    await set_budget(own_bus, tenant, 10_000, period="day")

    results = await asyncio.gather(
        *(reserve(own_bus, tenant, amount_micros=1_000) for _ in range(100)),
        return_exceptions=True,
    )

    granted = [r for r in results if isinstance(r, Reservation)]
    refused = [r for r in results if isinstance(r, BudgetExceeded)]
    assert (len(granted), len(refused)) == (10, 90), results[:3]
    assert sorted(r.remaining_micros for r in granted) == list(range(0, 10_000, 1_000))
    assert refused[0].details["reason"] == "budget_exceeded"
    assert refused[0].details["limit_micros"] == 10_000
    status = await get_budget(own_bus, tenant)
    assert (status.held_micros, status.spent_micros, status.remaining_micros) == (10_000, 0, 0)
    decided = [metric_value(r, "revo_ledger_reservations_total") for r in replicas]
    assert sum(decided) == 100 and min(decided) > 0  # both replicas took part


async def test_a_hold_that_is_never_settled_stops_counting_when_it_expires(ledger, ledger_bus):
    tenant = new_tenant()
    await set_budget(ledger_bus, tenant, 5_000)
    await reserve(ledger_bus, tenant, amount_micros=5_000, ttl_s=0.5)
    with pytest.raises(BudgetExceeded):
        await reserve(ledger_bus, tenant, amount_micros=1)

    await asyncio.sleep(0.6)

    again = await reserve(ledger_bus, tenant, amount_micros=5_000)
    assert again.remaining_micros == 0


async def test_a_settled_hold_counts_its_actual_cost_once_and_the_usage_event_closes_it(
    ledger, ledger_bus, postgres
):
    tenant = new_tenant()
    await set_budget(ledger_bus, tenant, 10_000)
    # 1000 input + 1000 output tokens of cloud-ref: 1000 * 1 + 1000 * 4 micro-USD.
    held = await reserve(
        ledger_bus,
        tenant,
        model="cloud-ref",
        prompt_tokens=1_000,
        max_completion_tokens=2_000,
        request_id="req-1",
    )
    assert held.amount_micros == 9_000 and held.remaining_micros == 1_000

    settled = await settle(
        ledger_bus,
        tenant,
        held.reservation_id,
        model="cloud-ref",
        provider="openai",
        prompt_tokens=1_000,
        completion_tokens=1_000,
    )
    assert (settled.status, settled.amount_micros) == ("settled", 5_000)
    assert (await get_budget(ledger_bus, tenant)).held_micros == 5_000

    event = usage_event(
        tenant,
        request_id="req-1",
        model="cloud-ref",
        provider="openai",
        prompt_tokens=1_000,
        completion_tokens=1_000,
    )
    await publish(ledger_bus, [event])
    await wait_recorded(postgres.dsn, tenant, 1)

    status = await get_budget(ledger_bus, tenant)
    assert (status.spent_micros, status.held_micros, status.remaining_micros) == (5_000, 0, 5_000)
    late = await settle(ledger_bus, tenant, held.reservation_id, cost_micros=5_000)
    assert late.status == "recorded"


async def test_a_released_hold_frees_its_money_and_a_repeated_reservation_holds_once(
    ledger, ledger_bus
):
    tenant = new_tenant()
    await set_budget(ledger_bus, tenant, 3_000)
    first = await reserve(ledger_bus, tenant, amount_micros=2_000, reservation_id="r-a")
    again = await reserve(ledger_bus, tenant, amount_micros=2_000, reservation_id="r-a")
    assert again.reservation_id == first.reservation_id
    assert (await get_budget(ledger_bus, tenant)).held_micros == 2_000

    released = await settle(ledger_bus, tenant, "r-a", cost_micros=0)

    assert released.status == "released"
    assert (await get_budget(ledger_bus, tenant)).held_micros == 0
    with pytest.raises(NotFound):
        await settle(ledger_bus, new_tenant(), "r-a", cost_micros=1)


async def test_a_tenant_without_a_budget_gets_the_default_policy(ledger, ledger_bus):
    tenant = new_tenant()

    with pytest.raises(BudgetExceeded) as refused:
        await reserve(ledger_bus, tenant, amount_micros=1)

    assert refused.value.details["reason"] == "no_budget"
    status = await get_budget(ledger_bus, tenant)
    assert status.policy == "deny" and status.limit_micros is None
    with pytest.raises(InvalidRequest):
        await reserve(ledger_bus, tenant, model="no-such-model", prompt_tokens=5)


async def test_a_key_budget_applies_beside_its_tenants(ledger, ledger_bus):
    tenant = new_tenant()
    await set_budget(ledger_bus, tenant, 10_000)
    await set_budget(ledger_bus, tenant, 2_000, api_key_id="key-1")

    await reserve(ledger_bus, tenant, amount_micros=2_000, api_key_id="key-1")
    with pytest.raises(BudgetExceeded) as refused:
        await reserve(ledger_bus, tenant, amount_micros=1, api_key_id="key-1")
    other_key = await reserve(ledger_bus, tenant, amount_micros=8_000, api_key_id="key-2")

    assert refused.value.details["budget"] == "api_key"
    assert other_key.remaining_micros == 0


class AlertInbox:
    def __init__(self) -> None:
        self.alerts: list[BudgetAlert] = []
        self.arrived = asyncio.Event()

    async def take(self, msg) -> None:
        self.alerts.append(msgspec.json.decode(msg.data, type=BudgetAlert))
        self.arrived.set()

    async def wait(self, count: int, timeout: float = 10.0) -> list[int]:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while len(self.alerts) < count:
                    self.arrived.clear()
                    await self.arrived.wait()
        return [a.threshold_pct for a in self.alerts]


async def test_alerts_come_once_per_threshold_and_not_again_after_a_restart(
    own_nats, own_bus, ledger_factory, test_prices_file, postgres
):
    env = {"REVO_COST_LEDGER_PRICES_FILE": str(test_prices_file)}
    ledger = ledger_factory.start(own_nats.url, "ledger-alerts-1", **env)
    tenant = new_tenant()
    inbox = AlertInbox()
    await own_bus.nc.subscribe(subjects.alerts(tenant), cb=inbox.take)
    await set_budget(own_bus, tenant, 1_000_000)  # $1 a month

    def spend(micro_usd: int):  # local-small output tokens cost 1 micro-USD each
        return usage_event(tenant, completion_tokens=micro_usd)

    await publish(own_bus, [spend(300_000), spend(250_000)])  # 55%
    assert await inbox.wait(1) == [50]
    await publish(own_bus, [spend(100_000)])  # 65%
    await wait_recorded(postgres.dsn, tenant, 3)

    ledger.kill()
    ledger_factory.start(own_nats.url, "ledger-alerts-2", **env)
    await publish(own_bus, [spend(200_000)])  # 85%
    assert await inbox.wait(2) == [50, 80]
    await publish(own_bus, [spend(100_000), spend(100_000)])  # 105%
    assert await inbox.wait(3) == [50, 80, 100]
    await wait_recorded(postgres.dsn, tenant, 6)
    await asyncio.sleep(0.5)

    assert [a.threshold_pct for a in inbox.alerts] == [50, 80, 100]
    last = inbox.alerts[-1]
    assert (last.spent_micros, last.limit_micros, last.period) == (1_050_000, 1_000_000, "month")
    assert (await get_budget(own_bus, tenant)).alerts_sent == [50, 80, 100]
