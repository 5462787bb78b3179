"""Wiring of the agent-runner: Postgres, agents, the run consumer, controls, the runs API."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
from aiohttp import web

from revo_agent_runner.agents import load_agents
from revo_agent_runner.api import RunsApi
from revo_agent_runner.control import Controls
from revo_agent_runner.event_writer import EventWriter
from revo_agent_runner.reconcile import Reconciler
from revo_agent_runner.runner import Runner
from revo_agent_runner.settings import AgentRunnerSettings
from revo_agent_runner.store import RunStore
from revo_contracts import subjects
from revo_contracts.runs import AgentListRequest, RunGetRequest, RunListRequest
from revo_contracts.streams import AUDIT, RUN_EVENTS, RUNS
from revo_core.db import apply_schema, connect_pool
from revo_core.endpoints import Endpoints
from revo_core.jetstream import ensure_streams
from revo_core.logging import get_logger
from revo_core.service import BUS, SETTINGS, create_service_app, serving_pool

SERVICE = "agent-runner"
SCHEMA_SQL = Path(__file__).with_name("schema.sql")
POOL: web.AppKey[asyncpg.Pool] = web.AppKey("pool", asyncpg.Pool)
log = get_logger("revo.agent_runner")


def create_app(settings: AgentRunnerSettings) -> web.Application:
    app = create_service_app(SERVICE, settings)
    app.cleanup_ctx.append(_database_ctx)
    app.cleanup_ctx.append(_runner_ctx)
    return app


async def _database_ctx(app: web.Application) -> AsyncIterator[None]:
    settings: AgentRunnerSettings = app[SETTINGS]  # type: ignore[assignment]
    pool = await connect_pool(settings.database_url, max_size=max(4, settings.max_concurrent_runs))
    await apply_schema(pool, SCHEMA_SQL.read_text())
    app[POOL] = pool
    async with serving_pool(app, pool):
        yield


async def _runner_ctx(app: web.Application) -> AsyncIterator[None]:
    settings: AgentRunnerSettings = app[SETTINGS]  # type: ignore[assignment]
    bus = app[BUS]
    agents = load_agents(settings.agents_file)
    await ensure_streams(bus.js, (RUNS, RUN_EVENTS, AUDIT))
    store = RunStore(app[POOL])
    writer = EventWriter(app[POOL])
    writer.start()
    runner = Runner(bus, store, writer, agents, settings)
    controls = Controls(runner, store)
    api = RunsApi(store, agents)
    endpoints = Endpoints(bus, "agent_runner", description="Runs of agents: list, show")
    await endpoints.start()
    group = subjects.AGENT_RUNNER_QUEUE_GROUP
    await endpoints.add("list", subjects.RUNS_LIST, RunListRequest, api.list, group)
    await endpoints.add("get", subjects.RUNS_GET, RunGetRequest, api.get, group)
    await endpoints.add("agents", subjects.RUNS_AGENTS, AgentListRequest, api.agents, group)
    await controls.start()
    await runner.start()
    reconciler = Reconciler(
        bus, store, writer, settings.reconcile_interval_s, running_here=runner.active
    )
    reconciler.start()
    log.info(
        "taking runs",
        agents=sorted(agents),
        max_concurrent=settings.max_concurrent_runs,
        runner_id=settings.runner_id,
    )
    yield
    await reconciler.stop()
    await runner.stop(grace=settings.drain_grace_s)
    with contextlib.suppress(Exception):
        await controls.stop()
    await endpoints.stop(grace=5)
    await writer.stop()
