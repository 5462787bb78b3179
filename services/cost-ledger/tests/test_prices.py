"""The price table: exact prices, every error of a bad table reported, and a bad reload
leaving the last good table in force (file change, SIGHUP, ledger.prices.reload)."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import pytest
from ledger_testkit import set_budget

from revo_contracts import subjects
from revo_contracts.ledger import PricesInfo, PricesReloadRequest, Reservation, ReserveRequest
from revo_core.testing.metrics import metric_value
from revo_cost_ledger.prices import PriceTableError, load_price_table, parse_price_table
from revo_cost_ledger.settings import DEFAULT_PRICES_FILE

TEST_PRICES = Path(__file__).with_name("prices_for_tests.yaml")


def test_the_shipped_table_loads_and_prices_tokens_exactly():
    table = load_price_table(DEFAULT_PRICES_FILE)
    assert table.cloud["gpt-4o-mini"].cost(1_000_000, 1_000_000) == 750_000_000_000  # $0.75
    assert table.reference == "gpt-4o-mini"
    assert table.price("local", "smollm2-135m-instruct") is not None
    assert table.price("local", "anything-else") == table.local_default


def test_a_local_price_comes_from_the_gpu_hour_and_the_measured_throughput():
    table = load_price_table(TEST_PRICES)
    small = table.local["local-small"]
    assert (small.input_pico, small.output_pico) == (100_000, 1_000_000)  # 0.1 and 1 micro-USD
    assert table.cloud["cloud-odd"].cost(3, 1) == 370_372  # 3 x 0.123457 + 0.000001 micro-USD


def test_a_table_with_errors_is_rejected_with_every_error_named():
    bad = {
        "reference": "nope",
        "cloud": {"a": {"input_per_1m": -1, "output_per_1m": "x"}, "b": {"input_per_1m": 1}},
        "local": {"c": {"gpu_hourly_usd": 1, "output_tokens_per_s": 0}},
        "colour": "blue",
    }
    with pytest.raises(PriceTableError) as rejected:
        parse_price_table(bad)
    problems = " | ".join(rejected.value.problems)
    for expected in (
        "unknown key 'colour'",
        "cloud.a.input_per_1m: -1 must be a finite number >= 0",
        "cloud.a.output_per_1m: 'x' is not a number",
        "cloud.b: missing output_per_1m",
        "local.c.output_tokens_per_s: must be above 0",
        "reference: 'nope' is not a model of the cloud section",
    ):
        assert expected in problems
    with pytest.raises(PriceTableError, match="more than six decimals"):
        parse_price_table(
            {"reference": "a", "cloud": {"a": {"input_per_1m": 0.1234567, "output_per_1m": 0}}}
        )


async def priced(bus, tenant: str) -> int:
    """What 1M input tokens of cloud-ref cost now, in micro-USD (a reservation prices it)."""
    request = ReserveRequest(tenant=tenant, model="cloud-ref", prompt_tokens=1_000_000, ttl_s=0.1)
    return (await bus.request(subjects.LEDGER_RESERVE, request, Reservation)).amount_micros


async def reload(bus) -> PricesInfo:
    return await bus.request(subjects.LEDGER_PRICES_RELOAD, PricesReloadRequest(), PricesInfo)


async def eventually(check, timeout: float = 10.0):
    end = time.monotonic() + timeout
    ok = await check()
    while not ok and time.monotonic() < end:
        await asyncio.sleep(0.1)
        ok = await check()
    return ok


def with_reference_price(usd: str) -> str:
    return TEST_PRICES.read_text().replace("input_per_1m: 1.00,", f"input_per_1m: {usd},", 1)


async def test_a_changed_file_is_picked_up_and_a_bad_one_keeps_the_last_good_table(
    own_nats, own_bus, ledger_factory, revo_tmp
):
    path = revo_tmp / "prices-watched.yaml"
    path.write_text(TEST_PRICES.read_text())
    ledger = ledger_factory.start(
        own_nats.url, "ledger-prices-watch", REVO_COST_LEDGER_PRICES_FILE=str(path)
    )
    tenant = "prices-watch"
    await set_budget(own_bus, tenant, 10**9)
    assert await priced(own_bus, tenant) == 1_000_000

    path.write_text(with_reference_price("2.00"))
    assert await eventually(lambda: _is(priced(own_bus, tenant), 2_000_000))

    path.write_text("reference: cloud-ref\ncloud: {cloud-ref: {input_per_1m: -3}}\n")
    assert await eventually(lambda: _is(_metric(ledger, "revo_ledger_price_table_ok"), 0))
    info = await reload(own_bus)
    assert "rejected" in info.last_error and "input_per_1m: -3" in info.last_error
    assert await priced(own_bus, tenant) == 2_000_000  # the last good table
    assert metric_value(ledger, "revo_ledger_price_table_loads_total", outcome="rejected") >= 1

    path.write_text(with_reference_price("3.00"))
    assert await eventually(lambda: _is(priced(own_bus, tenant), 3_000_000))
    assert (await reload(own_bus)).last_error is None


async def test_sighup_and_the_reload_request_reload_the_table(
    own_nats, own_bus, ledger_factory, revo_tmp
):
    path = revo_tmp / "prices-sighup.yaml"
    path.write_text(TEST_PRICES.read_text())
    ledger = ledger_factory.start(
        own_nats.url,
        "ledger-prices-sighup",
        REVO_COST_LEDGER_PRICES_FILE=str(path),
        REVO_COST_LEDGER_PRICES_CHECK_S="3600",  # no file watching: only the explicit ways
    )
    tenant = "prices-sighup"
    await set_budget(own_bus, tenant, 10**9)
    first = (await reload(own_bus)).version

    path.write_text(with_reference_price("5.00"))
    ledger.process.send_signal(signal.SIGHUP)
    assert await eventually(lambda: _is(priced(own_bus, tenant), 5_000_000))

    path.write_text("not: [valid")
    info = await reload(own_bus)
    assert info.last_error and "not YAML" in info.last_error
    assert info.version != first and await priced(own_bus, tenant) == 5_000_000


async def _is(value, expected) -> bool:
    return (await value) == expected


async def _metric(service, name: str) -> float:
    return metric_value(service, name)
