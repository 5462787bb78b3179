"""ledger.report: spend by day, tenant, model and provider; local share; savings; top runs.

The spend rows come from `usage_daily` (a few rows per tenant and day), the top runs from
the usage rows of the period. Sums are made in pico-dollars and rounded once, at the end.
"""

from __future__ import annotations

import datetime
from typing import Any

import asyncpg

from revo_contracts.ledger import CostReport, ReportRequest, RunCost, SpendRow, SpendTotals
from revo_core.errors import InvalidRequest
from revo_cost_ledger.money import micros
from revo_cost_ledger.price_book import PriceBook

DEFAULT_DAYS = 30

_ROWS = """
SELECT day, tenant, model, provider, sum(events) AS events,
       sum(prompt_tokens) AS prompt_tokens, sum(completion_tokens) AS completion_tokens,
       sum(cost_pico) AS cost_pico, sum(cloud_pico) AS cloud_pico,
       sum(unpriced_events) AS unpriced_events
  FROM ledger.usage_daily
 WHERE ($1::text IS NULL OR tenant = $1) AND day BETWEEN $2 AND $3
 GROUP BY day, tenant, model, provider
 ORDER BY day, tenant, model, provider
"""
_TOP_RUNS = """
SELECT run_id, tenant, sum(cost_pico) AS cost_pico,
       sum(prompt_tokens + completion_tokens) AS tokens, count(*) AS events
  FROM ledger.usage
 WHERE run_id IS NOT NULL AND ($1::text IS NULL OR tenant = $1) AND day BETWEEN $2 AND $3
 GROUP BY run_id, tenant
 ORDER BY cost_pico DESC, run_id
 LIMIT $4
"""


class Reports:
    def __init__(self, pool: asyncpg.Pool, prices: PriceBook) -> None:
        self.pool = pool
        self.prices = prices

    async def report(self, request: ReportRequest) -> CostReport:
        since, until = period_of(request)
        rows = await self.pool.fetch(_ROWS, request.tenant, since, until)
        runs = []
        if request.top_runs:
            runs = await self.pool.fetch(_TOP_RUNS, request.tenant, since, until, request.top_runs)
        return CostReport(
            since=since.isoformat(),
            until=until.isoformat(),
            tenant=request.tenant,
            totals=totals_of(rows),
            rows=[spend_row(row) for row in rows],
            top_runs=[run_cost(row) for row in runs],
            reference_model=self.prices.table.reference,
        )


def period_of(request: ReportRequest) -> tuple[datetime.date, datetime.date]:
    until = _utc_day(request.until) if request.until is not None else _today()
    if request.since is not None:
        since = _utc_day(request.since)
    else:
        since = until - datetime.timedelta(days=DEFAULT_DAYS - 1)
    if since > until:
        raise InvalidRequest("since is after until", {"field": "since"})
    return since, until


def _utc_day(ts: float) -> datetime.date:
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).date()


def _today() -> datetime.date:
    return datetime.datetime.now(datetime.UTC).date()


def totals_of(rows: list[Any]) -> SpendTotals:
    totals = SpendTotals()
    cost = cloud = 0
    for row in rows:
        tokens = int(row["prompt_tokens"]) + int(row["completion_tokens"])
        totals.events += int(row["events"])
        totals.prompt_tokens += int(row["prompt_tokens"])
        totals.completion_tokens += int(row["completion_tokens"])
        if row["provider"] == "local":
            totals.local_tokens += tokens
        else:
            totals.cloud_tokens += tokens
        totals.unpriced_events += int(row["unpriced_events"])
        cost += int(row["cost_pico"])
        cloud += int(row["cloud_pico"])
    all_tokens = totals.local_tokens + totals.cloud_tokens
    totals.local_share = totals.local_tokens / all_tokens if all_tokens else 0.0
    totals.cost_micros = micros(cost)
    totals.cloud_equivalent_micros = micros(cloud)
    totals.savings_micros = micros(cloud - cost)
    return totals


def spend_row(row: Any) -> SpendRow:
    return SpendRow(
        day=row["day"].isoformat(),
        tenant=row["tenant"],
        model=row["model"],
        provider=row["provider"],
        events=int(row["events"]),
        prompt_tokens=int(row["prompt_tokens"]),
        completion_tokens=int(row["completion_tokens"]),
        cost_micros=micros(int(row["cost_pico"])),
        cloud_equivalent_micros=micros(int(row["cloud_pico"])),
        unpriced_events=int(row["unpriced_events"]),
    )


def run_cost(row: Any) -> RunCost:
    return RunCost(
        run_id=row["run_id"],
        tenant=row["tenant"],
        cost_micros=micros(int(row["cost_pico"])),
        tokens=int(row["tokens"]),
        events=int(row["events"]),
    )
