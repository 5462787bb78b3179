"""Wiring of the integrations service: Postgres, the tenants' integrations, the webhooks
(the service's own public HTTP listener), the CI trigger and the notification channels."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from revo_contracts.streams import AUDIT, CI_EVENTS, NOTIFY, NOTIFY_DEAD
from revo_core.ci_logs import ci_logs_bucket
from revo_core.db import apply_schema, connect_pool
from revo_core.jetstream import ensure_streams
from revo_core.logging import get_logger
from revo_core.service import BUS, SETTINGS, create_service_app, serving_pool
from revo_integrations import webhooks
from revo_integrations.app_keys import ANNOUNCER, CONFIGS, POOL
from revo_integrations.ci_trigger import ci_trigger_ctx
from revo_integrations.config_api import config_endpoints_ctx
from revo_integrations.config_store import ConfigStore
from revo_integrations.consumer_lag import ConsumerLag
from revo_integrations.notifications import notifications_ctx
from revo_integrations.outcomes import OutcomeAnnouncer
from revo_integrations.secret_box import SecretBox
from revo_integrations.settings import IntegrationsSettings

SERVICE = "integrations"
# Each part of the service keeps its tables in its own schema*.sql, applied in name order.
SCHEMA_FILES = sorted(Path(__file__).parent.glob("schema*.sql"))
log = get_logger("revo.integrations")


def create_app(settings: IntegrationsSettings) -> web.Application:
    app = create_service_app(SERVICE, settings)
    app.cleanup_ctx.append(_database_ctx)
    app.cleanup_ctx.append(_streams_ctx)
    app.cleanup_ctx.append(_outcomes_ctx)  # before the trigger: it hands its runs over
    app.cleanup_ctx.append(config_endpoints_ctx)
    app.cleanup_ctx.append(ci_trigger_ctx)
    app.cleanup_ctx.append(notifications_ctx)
    app.cleanup_ctx.append(_lag_ctx)
    webhooks.install(app)
    return app


async def _database_ctx(app: web.Application) -> AsyncIterator[None]:
    settings: IntegrationsSettings = app[SETTINGS]  # type: ignore[assignment]
    box = SecretBox(settings.secret_keys)  # no key: the start stops here, saying how to make one
    pool = await connect_pool(settings.database_url, max_size=10)
    for schema in SCHEMA_FILES:
        await apply_schema(pool, schema.read_text())
    app[POOL] = pool
    app[CONFIGS] = ConfigStore(pool, box)
    if box.key_count > 1:  # a rotation: every row under the first key, so the others can go
        log.info("secrets re-encrypted under the first key", rows=await app[CONFIGS].rotate())
    async with serving_pool(app, pool):
        yield


async def _streams_ctx(app: web.Application) -> AsyncIterator[None]:
    bus = app[BUS]
    await ensure_streams(bus.js, (CI_EVENTS, NOTIFY, NOTIFY_DEAD, AUDIT))
    await ci_logs_bucket(bus.js)
    log.info("integrations ready")
    yield


async def _outcomes_ctx(app: web.Application) -> AsyncIterator[None]:
    settings: IntegrationsSettings = app[SETTINGS]  # type: ignore[assignment]
    announcer = OutcomeAnnouncer(app[BUS], app[POOL], settings.announce_every_s).start()
    app[ANNOUNCER] = announcer
    yield
    await announcer.stop()


async def _lag_ctx(app: web.Application) -> AsyncIterator[None]:
    lag = ConsumerLag(app[BUS]).start()
    yield
    await lag.stop()
