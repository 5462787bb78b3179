"""Budgets and holds: ledger.budget, ledger.reserve, ledger.settle, and the expiry sweep.

Reservations that arrive together are decided together (group commit): one call of
`ledger.reserve()` in Postgres locks the budgets concerned, reads what they have committed
and grants in arrival order while the holds fit. The lock makes it atomic across callers
and replicas (100 concurrent reserves against a budget that fits 10 grant exactly 10);
the batching keeps a burst of callers from queueing on that lock one round trip each.
Settlements that arrive together are written together too, in one statement.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg

from revo_contracts.ledger import (
    BudgetRequest,
    BudgetStatus,
    Reservation,
    ReserveRequest,
    Settlement,
    SettleRequest,
)
from revo_core.errors import BudgetExceeded, InvalidRequest, NotFound
from revo_core.group_commit import GroupCommit
from revo_core.logging import get_logger
from revo_cost_ledger import metrics
from revo_cost_ledger.alerts import AlertPublisher
from revo_cost_ledger.money import micros, pico
from revo_cost_ledger.price_book import PriceBook
from revo_cost_ledger.prices import Price
from revo_cost_ledger.settings import CostLedgerSettings

log = get_logger("revo.cost_ledger.budgets")

_RESERVE = "SELECT * FROM ledger.reserve($1, $2, $3, $4, $5, $6, $7, $8)"
_SETTLE = "SELECT * FROM ledger.settle($1, $2, $3, $4)"
_BUDGET = """
SELECT b.period, b.limit_pico, ledger.period_start(b.period) AS period_start,
       c.spent_pico, c.held_pico,
       (SELECT coalesce(array_agg(a.threshold ORDER BY a.threshold), '{}') FROM ledger.alerts a
         WHERE a.tenant = b.tenant AND a.api_key_id = b.api_key_id AND a.period = b.period
           AND a.period_start = ledger.period_start(b.period)) AS alerts_sent
  FROM ledger.budgets b
 CROSS JOIN LATERAL ledger.committed(b.tenant, b.api_key_id, b.period) AS c
 WHERE b.tenant = $1 AND b.api_key_id = $2
"""
_SET_BUDGET = """
INSERT INTO ledger.budgets (tenant, api_key_id, period, limit_pico) VALUES ($1, $2, $3, $4)
ON CONFLICT (tenant, api_key_id) DO UPDATE
   SET period = EXCLUDED.period, limit_pico = EXCLUDED.limit_pico, updated_at = now()
"""
_EXPIRE = """
WITH expired AS (
    UPDATE ledger.holds SET status = 'expired', closed_at = now()
     WHERE status IN ('held', 'settled') AND expires_at <= now()
    RETURNING 1)
SELECT count(*) FROM expired
"""
_FORGET = (
    "DELETE FROM ledger.holds WHERE status NOT IN ('held', 'settled') "
    "AND closed_at < now() - make_interval(days => $1)"
)


@dataclass(frozen=True)
class _Ask:
    reservation_id: str
    tenant: str
    api_key_id: str
    request_id: str | None
    amount_pico: int
    ttl_s: float


class BudgetBook:
    def __init__(
        self,
        pool: asyncpg.Pool,
        prices: PriceBook,
        alerts: AlertPublisher,
        settings: CostLedgerSettings,
    ) -> None:
        self.pool = pool
        self.prices = prices
        self.alerts = alerts
        self.settings = settings
        self._group = GroupCommit(self._decide, "reserve", settings.reserve_batch)
        self._settlements = GroupCommit(self._settle_batch, "settle", settings.reserve_batch)

    def start(self) -> None:
        self._group.start()
        self._settlements.start()

    async def stop(self) -> None:
        await self._group.stop()
        await self._settlements.stop()

    # -- reserve / settle -------------------------------------------------------------------

    async def reserve(self, request: ReserveRequest) -> Reservation:
        started = time.perf_counter()
        ask = _Ask(
            reservation_id=request.reservation_id or f"rsv-{uuid.uuid4().hex}",
            tenant=request.tenant,
            api_key_id=request.api_key_id or "",
            request_id=request.request_id,
            amount_pico=self._estimate(request),
            ttl_s=min(request.ttl_s or self.settings.hold_ttl_s, 86_400.0),
        )
        try:
            decision = await self._group.submit(ask)
            return await self._answer(ask, decision)
        finally:
            metrics.RESERVE_SECONDS.observe(time.perf_counter() - started)

    def _estimate(self, request: ReserveRequest) -> int:
        if request.amount_micros is not None:
            return pico(request.amount_micros)
        if request.model is None:
            raise InvalidRequest("give amount_micros, or model with the token counts")
        price = self._price_of(request.model, None)
        return price.cost(request.prompt_tokens, request.max_completion_tokens)

    def _price_of(self, model: str, provider: str | None) -> Price:
        table = self.prices.table
        if provider is not None:
            price = table.price(provider, model)
        else:
            price = table.cloud.get(model) or table.local.get(model)
        if price is None:
            raise InvalidRequest(
                f"model {model!r} is not in the price table", {"field": "model", "model": model}
            )
        return price

    async def _decide(self, asks: list[_Ask]) -> list[Any]:
        rows = await self.pool.fetch(
            _RESERVE,
            [a.reservation_id for a in asks],
            [a.tenant for a in asks],
            [a.api_key_id for a in asks],
            [a.request_id for a in asks],
            [a.amount_pico for a in asks],
            [a.ttl_s for a in asks],
            self.settings.default_policy == "allow",
            self.settings.durable_reservations,
        )
        return list(rows)

    async def _answer(self, ask: _Ask, decision: Any) -> Reservation:
        outcome = decision["outcome"]
        if outcome == "exists":
            return await self._existing(ask)
        metrics.RESERVATIONS.labels(outcome).inc()
        if outcome == "granted":
            remaining = None
            if decision["limit_pico"] is not None:
                remaining = micros(decision["limit_pico"] - int(decision["committed_pico"]))
            return Reservation(
                reservation_id=ask.reservation_id,
                tenant=ask.tenant,
                amount_micros=micros(ask.amount_pico),
                expires_at=decision["expires_at"].timestamp(),
                remaining_micros=remaining,
            )
        metrics.BUDGET_EXCEEDED.inc()
        raise _refusal(ask, decision)

    async def _existing(self, ask: _Ask) -> Reservation:
        """A repeated reservation id (a retried request): the hold as it stands."""
        row = await self.pool.fetchrow(
            "SELECT tenant, amount_pico, expires_at FROM ledger.holds WHERE reservation_id = $1",
            ask.reservation_id,
        )
        if row is None or row["tenant"] != ask.tenant:
            raise InvalidRequest(f"reservation id {ask.reservation_id!r} is in use")
        return Reservation(
            reservation_id=ask.reservation_id,
            tenant=ask.tenant,
            amount_micros=micros(row["amount_pico"]),
            expires_at=row["expires_at"].timestamp(),
        )

    async def settle(self, request: SettleRequest) -> Settlement:
        amount = self._actual(request)
        row = await self._settlements.submit((request.reservation_id, request.tenant, amount))
        if row["status"] is None:
            raise NotFound(f"no reservation {request.reservation_id!r}")
        metrics.SETTLEMENTS.labels(row["status"]).inc()
        return Settlement(
            reservation_id=request.reservation_id,
            status=row["status"],
            amount_micros=micros(row["amount_pico"]),
        )

    async def _settle_batch(self, asks: list[tuple[str, str, int]]) -> list[Any]:
        ids, tenants, amounts = (list(column) for column in zip(*asks, strict=True))
        rows = await self.pool.fetch(
            _SETTLE, ids, tenants, amounts, self.settings.settled_hold_ttl_s
        )
        found = {row["reservation_id"]: row for row in rows}
        return [found[reservation_id] for reservation_id in ids]

    def _actual(self, request: SettleRequest) -> int:
        if request.cost_micros is not None:
            return pico(request.cost_micros)
        if request.model is None:
            raise InvalidRequest("give cost_micros, or model with the token counts")
        price = self._price_of(request.model, request.provider)
        return price.cost(request.prompt_tokens, request.completion_tokens)

    # -- budgets ----------------------------------------------------------------------------

    async def budget(self, request: BudgetRequest) -> BudgetStatus:
        key = request.api_key_id or ""
        if request.action == "set":
            await self._set(request, key)
        elif request.action == "delete":
            await self.pool.execute(
                "DELETE FROM ledger.budgets WHERE tenant = $1 AND api_key_id = $2",
                request.tenant,
                key,
            )
        return await self.status(request.tenant, key)

    async def _set(self, request: BudgetRequest, key: str) -> None:
        if request.limit_micros is None:
            raise InvalidRequest("set needs limit_micros", {"field": "limit_micros"})
        await self.pool.execute(
            _SET_BUDGET, request.tenant, key, request.period, pico(request.limit_micros)
        )
        log.info(
            "budget set",
            tenant=request.tenant,
            api_key_id=request.api_key_id,
            period=request.period,
            limit_micros=request.limit_micros,
        )
        # A budget set below what is spent already is alerted at once.
        await self.alerts.check([request.tenant])

    async def status(self, tenant: str, key: str) -> BudgetStatus:
        """The budget that applies: a key without one of its own is under its tenant's."""
        row = await self.pool.fetchrow(_BUDGET, tenant, key)
        if row is None and key:
            return await self.status(tenant, "")
        if row is None:
            return BudgetStatus(
                tenant=tenant, api_key_id=key or None, policy=self.settings.default_policy
            )
        spent, held = micros(int(row["spent_pico"])), micros(int(row["held_pico"]))
        limit = micros(row["limit_pico"])
        return BudgetStatus(
            tenant=tenant,
            api_key_id=key or None,
            policy="budget",
            period=row["period"],
            period_start=row["period_start"].isoformat(),
            limit_micros=limit,
            spent_micros=spent,
            held_micros=held,
            remaining_micros=limit - spent - held,
            alerts_sent=list(row["alerts_sent"]),
        )

    # -- housekeeping -----------------------------------------------------------------------

    async def sweep(self) -> None:
        """Mark run-out holds expired (they count no more already) and forget old ones."""
        expired = await self.pool.fetchval(_EXPIRE)
        if expired:
            metrics.HOLDS_EXPIRED.inc(expired)
            log.info("holds expired", count=expired)
        await self.pool.execute(_FORGET, self.settings.keep_closed_holds_days)


def _refusal(ask: _Ask, decision: Any) -> BudgetExceeded:
    requested = micros(ask.amount_pico)
    if decision["outcome"] == "no_budget":
        return BudgetExceeded(
            f"tenant {ask.tenant!r} has no budget, and the ledger's default policy denies "
            "paid calls; set one with ledger.budget",
            {"reason": "no_budget", "tenant": ask.tenant, "requested_micros": requested},
        )
    budget = decision["budget_key"]
    scope = "api_key" if not budget.endswith("/") else "tenant"
    limit, committed = micros(decision["limit_pico"]), micros(int(decision["committed_pico"]))
    return BudgetExceeded(
        f"a hold of {requested} micro-USD does not fit the {scope} budget of {ask.tenant!r}: "
        f"{committed} of {limit} committed",
        {
            "reason": "budget_exceeded",
            "tenant": ask.tenant,
            "api_key_id": ask.api_key_id or None,
            "budget": scope,
            "limit_micros": limit,
            "committed_micros": committed,
            "requested_micros": requested,
        },
    )
