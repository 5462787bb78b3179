"""Wiring of the cost ledger: Postgres, the price table, usage ingestion, the endpoints."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
from aiohttp import web

from revo_contracts.streams import AUDIT, USAGE, USAGE_DEAD
from revo_core.db import apply_schema, connect_pool
from revo_core.jetstream import ensure_streams
from revo_core.logging import get_logger
from revo_core.service import BUS, SETTINGS, create_service_app, serving_pool
from revo_cost_ledger.alerts import AlertPublisher
from revo_cost_ledger.api import start_endpoints
from revo_cost_ledger.budgets import BudgetBook
from revo_cost_ledger.ingest import UsageIngest
from revo_cost_ledger.price_book import PriceBook
from revo_cost_ledger.recorder import UsageRecorder
from revo_cost_ledger.report import Reports
from revo_cost_ledger.settings import CostLedgerSettings

SERVICE = "cost-ledger"
SCHEMA_SQL = Path(__file__).with_name("schema.sql")
POOL: web.AppKey[asyncpg.Pool] = web.AppKey("pool", asyncpg.Pool)
PRICES: web.AppKey[PriceBook] = web.AppKey("prices", PriceBook)
log = get_logger("revo.cost_ledger")


def create_app(settings: CostLedgerSettings) -> web.Application:
    app = create_service_app(SERVICE, settings)
    app.cleanup_ctx.append(_prices_ctx)
    app.cleanup_ctx.append(_database_ctx)
    app.cleanup_ctx.append(_ledger_ctx)
    return app


async def _prices_ctx(app: web.Application) -> AsyncIterator[None]:
    settings: CostLedgerSettings = app[SETTINGS]  # type: ignore[assignment]
    prices = PriceBook(settings.prices_file, settings.prices_check_s)
    prices.load()  # no last good table yet: a bad one stops the start here, with its errors
    prices.start()
    app[PRICES] = prices
    yield
    prices.stop()


async def _database_ctx(app: web.Application) -> AsyncIterator[None]:
    settings: CostLedgerSettings = app[SETTINGS]  # type: ignore[assignment]
    pool = await connect_pool(settings.database_url, max_size=settings.writers + 6)
    await apply_schema(pool, SCHEMA_SQL.read_text())
    app[POOL] = pool
    async with serving_pool(app, pool):
        yield


async def _ledger_ctx(app: web.Application) -> AsyncIterator[None]:
    settings: CostLedgerSettings = app[SETTINGS]  # type: ignore[assignment]
    bus, pool, prices = app[BUS], app[POOL], app[PRICES]
    await ensure_streams(bus.js, (USAGE, USAGE_DEAD, AUDIT))
    alerts = AlertPublisher(bus, pool, settings.alert_thresholds)
    await alerts.check_all()
    alerts.start()
    budgets = BudgetBook(pool, prices, alerts, settings)
    budgets.start()
    ingest = UsageIngest(bus, UsageRecorder(pool), prices, alerts, settings)
    await ingest.start()
    endpoints = await start_endpoints(bus, budgets, Reports(pool, prices), prices)
    sweeper = asyncio.create_task(_sweep(budgets, alerts, settings.sweep_every_s))
    log.info(
        "recording usage",
        batch_size=settings.batch_size,
        writers=settings.writers,
        default_policy=settings.default_policy,
    )
    yield
    sweeper.cancel()
    await ingest.stop(grace=settings.drain_grace_s)
    with contextlib.suppress(Exception):
        await endpoints.stop(grace=5)
    await budgets.stop()
    await alerts.stop()


async def _sweep(budgets: BudgetBook, alerts: AlertPublisher, every_s: float) -> None:
    while True:
        await asyncio.sleep(every_s)
        try:
            await budgets.sweep()
            await alerts.check_all()
        except Exception as exc:
            log.warning("sweep failed", error=str(exc))
