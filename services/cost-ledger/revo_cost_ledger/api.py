"""The ledger's request/reply endpoints: ledger.reserve, .settle, .budget, .report and
.prices.reload (queue group `cost-ledger`: one replica answers each request)."""

from __future__ import annotations

from revo_contracts import subjects
from revo_contracts.audit import AuditEvent
from revo_contracts.bus_identities import OPERATOR
from revo_contracts.ledger import (
    BudgetRequest,
    PricesReloadRequest,
    ReportRequest,
    ReserveRequest,
    SettleRequest,
)
from revo_core.audit import audit_event, record_audit
from revo_core.bus import Bus
from revo_core.endpoints import Endpoints
from revo_cost_ledger.budgets import BudgetBook
from revo_cost_ledger.price_book import PriceBook
from revo_cost_ledger.report import Reports


async def start_endpoints(
    bus: Bus, budgets: BudgetBook, reports: Reports, prices: PriceBook
) -> Endpoints:
    endpoints = Endpoints(bus, "cost_ledger", description="Budgets, reservations, cost reports")
    await endpoints.start()
    group = subjects.LEDGER_QUEUE_GROUP
    await endpoints.add("reserve", subjects.LEDGER_RESERVE, ReserveRequest, budgets.reserve, group)
    await endpoints.add("settle", subjects.LEDGER_SETTLE, SettleRequest, budgets.settle, group)

    async def budget(request: BudgetRequest):
        status = await budgets.budget(request)
        if request.action != "get":
            await record_audit(bus, _budget_audit(request))
        return status

    await endpoints.add("budget", subjects.LEDGER_BUDGET, BudgetRequest, budget, group)
    await endpoints.add("report", subjects.LEDGER_REPORT, ReportRequest, reports.report, group)

    async def reload(_: PricesReloadRequest):
        prices.reload()
        return prices.info()

    await endpoints.add(
        "prices_reload", subjects.LEDGER_PRICES_RELOAD, PricesReloadRequest, reload, group
    )
    return endpoints


def _budget_audit(request: BudgetRequest) -> AuditEvent:
    """Only the operator's identity may publish ledger.budget (bus_identities)."""
    return audit_event(
        request.tenant,
        OPERATOR,
        "budget.set" if request.action == "set" else "budget.deleted",
        target=f"key:{request.api_key_id}" if request.api_key_id else "tenant",
        service="cost-ledger",
        period=request.period,
        limit_micros=request.limit_micros,
    )
