"""Budget alerts on `alerts.<tenant>`: recorded in Postgres first (the outbox), then sent.

`ledger.alerts` has one row per (budget, period, threshold), inserted when the budget is
checked after a batch raised its spend (or a budget was set), so a threshold is alerted once
per period however often the ledger restarts. A row is marked published once it went out;
rows left unpublished by a crash between the insert and the publish are sent at the next
start or sweep, which also checks every budget (a check lost to a crash is made then).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
from collections.abc import Iterable, Sequence
from typing import Any

import asyncpg

from revo_contracts import subjects
from revo_contracts.ledger import BudgetAlert
from revo_core import headers as h
from revo_core.bus import Bus
from revo_core.logging import get_logger
from revo_cost_ledger import metrics
from revo_cost_ledger.money import micros

log = get_logger("revo.cost_ledger.alerts")


_CHECK = "SELECT * FROM ledger.check_alerts($1::text[], $2::integer[])"
_CHECK_ALL = (
    "SELECT * FROM ledger.check_alerts((SELECT array_agg(DISTINCT tenant) FROM ledger.budgets), "
    "$1::integer[])"
)


class AlertPublisher:
    """Checks the budgets of tenants whose spend grew, off the recording path: the batches
    written meanwhile are checked together in one query. A check lost to a crash is made
    by the periodic `check_all`."""

    def __init__(self, bus: Bus, pool: asyncpg.Pool, thresholds: Sequence[int]) -> None:
        self.bus = bus
        self.pool = pool
        self.thresholds = list(thresholds)
        self._tenants: set[str] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._check_loop(), name="budget-alerts")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def spent(self, tenants: Iterable[str]) -> None:
        """Tenants whose recorded spend just grew."""
        self._tenants.update(tenants)
        self._wake.set()

    async def _check_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            tenants, self._tenants = sorted(self._tenants), set()
            try:
                await self.check(tenants)
            except Exception as exc:
                log.warning("budget alert check failed; the sweep retries", error=str(exc))

    async def check(self, tenants: Sequence[str]) -> None:
        if self.thresholds and tenants:
            await self.publish(await self.pool.fetch(_CHECK, list(tenants), self.thresholds))

    async def check_all(self) -> None:
        """Every budget, and every alert recorded but not sent (a crash in between)."""
        if self.thresholds:
            await self.publish(await self.pool.fetch(_CHECK_ALL, self.thresholds))
        await self.publish_pending()

    async def publish(self, alerts: Sequence[Any]) -> None:
        """Send recorded alerts and mark them published; a failure leaves them for later."""
        sent = []
        for alert in alerts:
            try:
                await self.bus.publish(
                    subjects.alerts(alert["tenant"]),
                    to_message(alert),
                    headers={h.MSG_ID: f"budget-{alert['id']}"},
                )
            except Exception as exc:
                log.warning("budget alert not sent; retried later", id=alert["id"], error=str(exc))
                continue
            sent.append(alert["id"])
            metrics.ALERTS.labels(str(alert["threshold"])).inc()
            log.info(
                "budget alert",
                tenant=alert["tenant"],
                api_key_id=alert["api_key_id"] or None,
                threshold_pct=alert["threshold"],
                spent_usd=micros(alert["spent_pico"]) / 1e6,
                limit_usd=micros(alert["limit_pico"]) / 1e6,
            )
        if sent:
            await self.pool.execute(
                "UPDATE ledger.alerts SET published_at = now() WHERE id = ANY($1::bigint[])", sent
            )

    async def publish_pending(self) -> None:
        rows = await self.pool.fetch(
            "SELECT * FROM ledger.alerts WHERE published_at IS NULL ORDER BY id LIMIT 1000"
        )
        if rows:
            log.info("sending budget alerts left unsent", count=len(rows))
            await self.publish(rows)


def to_message(alert: Any) -> BudgetAlert:
    created: datetime.datetime = alert["created_at"]
    return BudgetAlert(
        tenant=alert["tenant"],
        api_key_id=alert["api_key_id"] or None,
        threshold_pct=alert["threshold"],
        period=alert["period"],
        period_start=alert["period_start"].isoformat(),
        spent_micros=micros(alert["spent_pico"]),
        limit_micros=micros(alert["limit_pico"]),
        created_at=created.timestamp(),
    )
