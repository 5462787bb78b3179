"""The service runner: an aiohttp app that owns every resource through cleanup contexts.

Each resource (NATS connection, engines, endpoints) is a `cleanup_ctx` generator: set up
before `yield`, torn down after, in reverse order. aiohttp turns SIGTERM/SIGINT into a
graceful exit, so shutdown always runs: endpoints stop and drain in-flight work, then
the bus drains and closes. The same app serves /metrics, /healthz and /readyz.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from revo_core.bus import Bus
from revo_core.db import DatabaseWatch
from revo_core.logging import configure_logging, get_logger
from revo_core.settings import ServiceSettings
from revo_core.tracing import setup_tracing, shutdown_tracing

SETTINGS: web.AppKey[ServiceSettings] = web.AppKey("settings", ServiceSettings)
BUS: web.AppKey[Bus] = web.AppKey("bus", Bus)
READY_CHECKS: web.AppKey[list[Callable[[], bool]]] = web.AppKey("ready_checks", list)
SERVICE_NAME: web.AppKey[str] = web.AppKey("service_name", str)

log = get_logger("revo.service")


def create_service_app(name: str, settings: ServiceSettings) -> web.Application:
    """An app with the bus connected and the health/metrics routes; add your contexts."""
    app = web.Application()
    app[SERVICE_NAME] = name
    app[SETTINGS] = settings
    app[READY_CHECKS] = []
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    app.cleanup_ctx.append(_bus_ctx)
    return app


async def _bus_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    bus = await Bus.connect(
        settings.nats_url, name=app[SERVICE_NAME], credentials=settings.nats_creds
    )
    app[BUS] = bus
    app[READY_CHECKS].append(lambda: bus.connected)
    log.info("connected to nats", url=settings.nats_url)
    yield
    await bus.close()
    log.info("nats connection drained and closed")


async def _metrics(_: web.Request) -> web.Response:
    return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _healthz(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _readyz(request: web.Request) -> web.Response:
    checks = request.app[READY_CHECKS]
    ready = bool(checks) and all(check() for check in checks)
    return web.json_response({"ready": ready}, status=200 if ready else 503)


def run_service(
    name: str,
    settings: ServiceSettings,
    build: Callable[[ServiceSettings], web.Application],
) -> None:
    """Configure logging and tracing once, then serve until SIGTERM/SIGINT."""
    configure_logging(name, settings.log_level, settings.log_json)
    setup_tracing(name)
    # Bind first: start-up (a model load) can take a minute, during which vLLM and torch
    # open ports of their own and could take ours. Connections wait in the backlog.
    sock = _listen(settings.http_host, settings.http_port)
    app = build(settings)
    log.info("starting", http_port=settings.http_port)
    try:
        web.run_app(
            app,
            sock=sock,
            print=None,
            access_log=None,
            shutdown_timeout=settings.drain_grace_s,
        )
    finally:
        shutdown_tracing()
        log.info("stopped")


def _listen(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    return sock


def ready_check(app: web.Application, check: Callable[[], Any]) -> None:
    app[READY_CHECKS].append(lambda: bool(check()))


@contextlib.asynccontextmanager
async def serving_pool(app: web.Application, pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Pool]:
    """The service's pool while it serves: /readyz follows Postgres (a background probe, so
    a readiness poll costs no query), and the pool is closed when the service stops."""
    watch = DatabaseWatch(pool).start()
    ready_check(app, lambda: watch.ok)
    try:
        yield pool
    finally:
        watch.stop()
        await pool.close()
