"""`revo cost` (the cost ledger's report as tables) and `revo budget` (show, set, delete).

Exit status: 0 done, 1 the ledger refused, 2 bad usage or no ledger to talk to.
"""

from __future__ import annotations

import argparse
import asyncio

from revo_cli.run_output import table
from revo_cli.service_call import EXIT_OK, EXIT_USAGE, call_service, fail
from revo_contracts import subjects
from revo_contracts.ledger import BudgetRequest, BudgetStatus, CostReport, ReportRequest
from revo_core.bus import Bus
from revo_core.when import parse_when

SPEND_COLUMNS = (
    "DAY", "TENANT", "MODEL", "PROVIDER", "EVENTS", "IN", "OUT", "COST", "CLOUD-EQUIV", "SAVED",
)  # fmt: skip
RUN_COLUMNS = ("RUN", "TENANT", "COST", "TOKENS", "EVENTS")


def cost_command(args: argparse.Namespace, nats_url: str) -> int:
    try:
        request = ReportRequest(
            tenant=args.tenant,
            since=parse_when(args.since),
            until=parse_when(args.until),
            top_runs=args.top,
        )
    except ValueError as exc:
        return fail(f"error: {exc}", EXIT_USAGE)
    return asyncio.run(call_service(nats_url, "cost-ledger", lambda bus: _report(bus, request)))


def budget_command(args: argparse.Namespace, nats_url: str) -> int:
    action = "delete" if args.delete else "set" if args.set is not None else "get"
    request = BudgetRequest(
        tenant=args.tenant,
        action=action,
        api_key_id=args.key,
        period=args.period,
        limit_micros=None if args.set is None else round(args.set * 1_000_000),
    )
    return asyncio.run(call_service(nats_url, "cost-ledger", lambda bus: _budget(bus, request)))


async def _report(bus: Bus, request: ReportRequest) -> int:
    report = await bus.request(subjects.LEDGER_REPORT, request, CostReport, timeout=30)
    print("\n".join(report_lines(report)))
    return EXIT_OK


async def _budget(bus: Bus, request: BudgetRequest) -> int:
    status = await bus.request(subjects.LEDGER_BUDGET, request, BudgetStatus)
    print("\n".join(budget_lines(status)))
    return EXIT_OK


def usd(micros: int) -> str:
    """Exact dollars from micro-dollars: at least cents, more digits where they matter."""
    sign = "-" if micros < 0 else ""
    dollars, rest = divmod(abs(micros), 1_000_000)
    fraction = f"{rest:06d}".rstrip("0").ljust(2, "0")
    return f"{sign}${dollars:,}.{fraction}"


def report_lines(report: CostReport) -> list[str]:
    who = f"tenant {report.tenant}" if report.tenant else "all tenants"
    lines = [
        f"cost {report.since} .. {report.until} (UTC days), {who}; "
        f"cloud-equivalent priced as {report.reference_model}",
        "",
    ]
    if not report.rows:
        return [*lines, "no usage recorded in this period"]
    rows = [
        (
            r.day,
            r.tenant,
            r.model,
            r.provider,
            f"{r.events:,}",
            f"{r.prompt_tokens:,}",
            f"{r.completion_tokens:,}",
            usd(r.cost_micros) + ("*" if r.unpriced_events else ""),
            usd(r.cloud_equivalent_micros),
            usd(r.cloud_equivalent_micros - r.cost_micros),
        )
        for r in report.rows
    ]
    lines += table(SPEND_COLUMNS, rows)
    t = report.totals
    lines += [
        "",
        f"total: {t.events:,} events, {t.prompt_tokens + t.completion_tokens:,} tokens, "
        f"local share {t.local_share:.1%}",
        f"cost {usd(t.cost_micros)}, cloud-equivalent {usd(t.cloud_equivalent_micros)}, "
        f"saved {usd(t.savings_micros)}",
    ]
    if t.unpriced_events:
        lines.append(f"* {t.unpriced_events:,} events of models without a price (cost 0)")
    if report.top_runs:
        runs = [
            (r.run_id, r.tenant, usd(r.cost_micros), f"{r.tokens:,}", f"{r.events:,}")
            for r in report.top_runs
        ]
        lines += ["", "top runs by cost:", *table(RUN_COLUMNS, runs)]
    return lines


def budget_lines(status: BudgetStatus) -> list[str]:
    who = status.tenant + (f" (key {status.api_key_id})" if status.api_key_id else "")
    if status.policy != "budget":
        return [f"{who}: no budget; the ledger's default policy applies: {status.policy}"]
    assert status.limit_micros is not None and status.remaining_micros is not None
    alerts = ", ".join(f"{pct}%" for pct in status.alerts_sent) or "none"
    return [
        f"{who}: {usd(status.limit_micros)} a {status.period} "
        f"(period from {status.period_start}, UTC)",
        f"spent {usd(status.spent_micros)}, held {usd(status.held_micros)}, "
        f"remaining {usd(status.remaining_micros)}; alerts sent: {alerts}",
    ]
