"""Wiring of the chat gateway: Postgres, credentials, limits, the HTTP API, the audit log and
the operators' endpoints on NATS."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
from aiohttp import web

from revo_chat_gateway import (
    audit_api,
    ci_events_api,
    costs_api,
    keys_api,
    openai_api,
    openapi,
    permissions,
    runs_api,
    sessions_api,
    web_page,
    whoami,
    ws_chat,
)
from revo_chat_gateway.audit_log import AUDIT_KEEPER, AuditKeeper
from revo_chat_gateway.auth import AUTHENTICATOR, LIMITER, Authenticator, auth_middleware
from revo_chat_gateway.http_errors import error_middleware, mark_answer_began
from revo_chat_gateway.http_tracing import tracing_middleware
from revo_chat_gateway.key_admin import KEY_ADMIN, KeyAdmin, revoked_keys_ctx
from revo_chat_gateway.keys import KeyStore
from revo_chat_gateway.limits import RateLimiter
from revo_chat_gateway.settings import GatewaySettings
from revo_chat_gateway.tokens import TokenVerifier
from revo_contracts import subjects
from revo_contracts.audit import AuditListRequest
from revo_contracts.streams import AUDIT
from revo_core.db import apply_schema, connect_pool
from revo_core.endpoints import Endpoints
from revo_core.jetstream import ensure_streams
from revo_core.logging import get_logger
from revo_core.service import BUS, SETTINGS, create_service_app, serving_pool

SERVICE = "chat-gateway"
SCHEMA_SQL = Path(__file__).with_name("schema.sql")
POOL: web.AppKey[asyncpg.Pool] = web.AppKey("pool", asyncpg.Pool)
log = get_logger("revo.chat_gateway")


def create_app(settings: GatewaySettings) -> web.Application:
    app = create_service_app(SERVICE, settings)
    app._client_max_size = settings.max_message_bytes
    app.middlewares.append(tracing_middleware)
    # Inside the span (its status is the answer's), around everything else.
    app.middlewares.append(error_middleware)
    app.on_response_prepare.append(mark_answer_began)
    app.middlewares.append(auth_middleware())
    app[LIMITER] = RateLimiter(
        settings.rate_limit_per_minute,
        settings.max_concurrent_runs,
        settings.new_sessions_per_minute,
    )
    app.cleanup_ctx.append(_database_ctx)
    app.cleanup_ctx.append(_audit_ctx)
    app.cleanup_ctx.append(_operator_endpoints_ctx)
    app.cleanup_ctx.append(revoked_keys_ctx)
    add_api_routes(app)
    app.on_startup.append(permissions.check_every_route_has_a_rule)
    return app


def add_api_routes(app: web.Application) -> None:
    """The /v1 API; each module adds its own routes."""
    whoami.add_routes(app)
    openai_api.add_routes(app)
    runs_api.add_routes(app)
    sessions_api.add_routes(app)
    costs_api.add_routes(app)
    keys_api.add_routes(app)
    audit_api.add_routes(app)
    ci_events_api.add_routes(app)
    ws_chat.add_routes(app)
    web_page.add_routes(app)
    openapi.add_routes(app)


async def _database_ctx(app: web.Application) -> AsyncIterator[None]:
    settings: GatewaySettings = app[SETTINGS]  # type: ignore[assignment]
    pool = await connect_pool(settings.database_url)
    await apply_schema(pool, SCHEMA_SQL.read_text())
    app[POOL] = pool
    tokens = TokenVerifier(settings.jwt_secret, settings.jwt_public_key, settings.jwt_audience)
    app[AUTHENTICATOR] = Authenticator(KeyStore(pool), tokens)
    async with serving_pool(app, pool):
        yield


async def _operator_endpoints_ctx(app: web.Application) -> AsyncIterator[None]:
    """Operator endpoints on NATS (only the operator's identity may publish to them):
    `gateway.keys.create|list|revoke` (API keys) and `gateway.audit.list` (the audit log)."""
    bus = app[BUS]
    endpoints = Endpoints(bus, "chat_gateway", description="API keys and the audit log")
    await endpoints.start()
    key_admin = KeyAdmin(app[AUTHENTICATOR].keys, bus, SERVICE)
    app[KEY_ADMIN] = key_admin  # the tenant admins' /v1/keys too
    await key_admin.add_endpoints(endpoints)
    await endpoints.add(
        "audit_list",
        subjects.GATEWAY_AUDIT_LIST,
        AuditListRequest,
        app[AUDIT_KEEPER].list,
        subjects.GATEWAY_QUEUE_GROUP,
    )
    yield
    await endpoints.stop(grace=5)


async def _audit_ctx(app: web.Application) -> AsyncIterator[None]:
    """The audit log: the AUDIT stream (this service owns it) kept in gateway.audit."""
    bus = app[BUS]
    await ensure_streams(bus.js, (AUDIT,))
    keeper = AuditKeeper(bus, app[POOL])
    await keeper.start()
    app[AUDIT_KEEPER] = keeper
    yield
    await keeper.stop()
