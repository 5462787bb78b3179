"""ledger.report and `revo cost`: spend by day, tenant, model and provider; local share;
savings against the reference cloud model; top runs."""

from __future__ import annotations

import asyncio
import sys
import time

from ledger_testkit import new_tenant, publish, set_budget, usage_event, wait_recorded

from revo_cli.cost import usd
from revo_contracts import subjects
from revo_contracts.ledger import CostReport, ReportRequest
from revo_core.when import parse_when

DAY = 86_400.0
REVO = [sys.executable, "-m", "revo_cli.main"]


async def revo(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *REVO, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode or 0, out.decode(), err.decode()


def history(tenant: str) -> list:
    now = time.time()
    local, cloud = {"model": "local-small"}, {"model": "cloud-big", "provider": "openai"}
    return [
        # Today: run-a spends $0.0106 locally-and-cloud, run-b $0.0004 locally.
        usage_event(tenant, **local, prompt_tokens=2_000, completion_tokens=400, run_id="run-b"),
        usage_event(tenant, **local, prompt_tokens=1_000, completion_tokens=300, run_id="run-a"),
        usage_event(tenant, **cloud, prompt_tokens=500, completion_tokens=100, run_id="run-a"),
        # Yesterday and three days ago.
        usage_event(tenant, **local, completion_tokens=1_000, created_at=now - DAY),
        usage_event(tenant, **cloud, prompt_tokens=9_999, created_at=now - 3 * DAY),
    ]


async def test_the_report_adds_up_spend_local_share_savings_and_top_runs(
    ledger, ledger_bus, postgres
):
    tenant = new_tenant()
    await publish(ledger_bus, history(tenant))
    await wait_recorded(postgres.dsn, tenant, 5)

    request = ReportRequest(tenant=tenant, since=time.time() - DAY, top_runs=5)
    report = await ledger_bus.request(subjects.LEDGER_REPORT, request, CostReport)

    rows = [
        (r.model, r.provider, r.events, r.cost_micros, r.cloud_equivalent_micros)
        for r in report.rows
    ]
    # local-small: 0.1 $/1M in, 1 $/1M out; cloud-big 10/30; reference cloud-ref 1/4.
    assert rows == [
        ("local-small", "local", 1, 1_000, 4_000),  # yesterday
        ("cloud-big", "openai", 1, 8_000, 900),
        ("local-small", "local", 2, 1_000, 5_800),
    ]
    t = report.totals
    assert (t.events, t.prompt_tokens, t.completion_tokens) == (4, 3_500, 1_800)
    assert (t.local_tokens, t.cloud_tokens) == (4_700, 600)
    assert abs(t.local_share - 4_700 / 5_300) < 1e-9
    assert (t.cost_micros, t.cloud_equivalent_micros, t.savings_micros) == (10_000, 10_700, 700)
    assert [(r.run_id, r.cost_micros, r.tokens) for r in report.top_runs] == [
        ("run-a", 8_400, 1_900),
        ("run-b", 600, 2_400),
    ]
    assert report.reference_model == "cloud-ref"


async def test_revo_cost_prints_the_report_as_tables(ledger, ledger_nats, ledger_bus, postgres):
    tenant = new_tenant()
    await publish(ledger_bus, history(tenant))
    await wait_recorded(postgres.dsn, tenant, 5)

    code, out, err = await revo(
        "--nats-url", ledger_nats.url, "cost", "--tenant", tenant, "--since", "1d"
    )

    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("cost ") and f"tenant {tenant}" in lines[0]
    header = next(line for line in lines if line.startswith("DAY"))
    assert header.split() == ["DAY", "TENANT", "MODEL", "PROVIDER", "EVENTS", "IN", "OUT",
                              "COST", "CLOUD-EQUIV", "SAVED"]  # fmt: skip
    big = next(line for line in lines if "cloud-big" in line).split()
    assert big[1:] == [tenant, "cloud-big", "openai", "1", "500", "100", "$0.008", "$0.0009",
                       "-$0.0071"]  # fmt: skip
    assert "total: 4 events, 5,300 tokens, local share 88.7%" in out
    assert "cost $0.01, cloud-equivalent $0.0107, saved $0.0007" in out
    run_a = next(line for line in lines if line.startswith("run-a")).split()
    assert run_a == ["run-a", tenant, "$0.0084", "1,900", "2"]


async def test_revo_budget_sets_and_shows_a_budget(ledger, ledger_nats, ledger_bus):
    tenant = new_tenant()

    code, out, err = await revo(
        "--nats-url",
        ledger_nats.url,
        "budget",
        "--tenant",
        tenant,
        "--set",
        "25",
        "--period",
        "day",
    )

    assert code == 0, err
    assert out.splitlines()[0].startswith(f"{tenant}: $25.00 a day")
    await set_budget(ledger_bus, tenant, 5_000_000)
    code, out, _ = await revo("--nats-url", ledger_nats.url, "budget", "--tenant", tenant)
    assert "$5.00 a month" in out and "remaining $5.00" in out


async def test_revo_cost_without_a_ledger_says_so(own_nats):
    code, _, err = await revo("--nats-url", own_nats.url, "cost")
    assert code == 2 and "no cost-ledger answers" in err


def test_money_is_printed_exactly_and_times_are_read_in_several_forms():
    assert [usd(m) for m in (0, 1, 10_000, 1_234_567_891, -700)] == [
        "$0.00", "$0.000001", "$0.01", "$1,234.567891", "-$0.0007",
    ]  # fmt: skip
    now = 1_800_000_000.0
    assert parse_when("7d", now) == now - 7 * DAY
    assert parse_when("2026-11-01") == 1_793_491_200.0
    assert parse_when("1793491200") == 1_793_491_200.0
