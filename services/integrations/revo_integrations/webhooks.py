"""Provider webhooks on the service's public listener: `POST /hooks/<provider>/<tenant>`.

What every provider's endpoint shares: the size limit (refused from Content-Length, and
again while reading), the tenant's integration (cached briefly), a server span per
webhook, typed JSON errors, the metrics, and the acceptance of an event: recorded in
Postgres (dedupe by delivery id, durable), then published to CI_EVENTS with its event id
as Nats-Msg-Id before the 202, or, when a log must be fetched first, completed in the
background (deliveries.py) right after the 202.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import aiohttp
import msgspec
from aiohttp import web
from nats.errors import Error as NatsError
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode

from revo_contracts.ci import CiEvent
from revo_contracts.integrations import Integration
from revo_core.db import DATABASE_AWAY
from revo_core.logging import get_logger
from revo_core.service import BUS, SETTINGS
from revo_core.tracing import current_ids, extract, inject
from revo_integrations.app_keys import CONFIGS, POOL
from revo_integrations.config_store import ConfigStore
from revo_integrations.deliveries import (
    DeliveryKey,
    DeliveryStore,
    DeliveryWorker,
    LogSource,
    PendingDelivery,
)
from revo_integrations.log_fetch import LogFetcher
from revo_integrations.metrics import WEBHOOKS
from revo_integrations.settings import IntegrationsSettings

T = TypeVar("T")
log = get_logger("revo.integrations.webhooks")
_tracer = trace.get_tracer("revo.integrations.webhooks")
# A delivery id as providers send them (a GUID); anything else is refused.
DELIVERY_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_READ_CHUNK = 256 * 1024
_MSGSPEC_PATH = re.compile(r" - at `\$\.?([^`]*)`$")
_MISSING_FIELD = re.compile(r"missing required field `([^`]+)`")


class HookError(Exception):
    """A refused webhook: its status, contract code, the metrics outcome, and the field."""

    def __init__(
        self, status: int, code: str, outcome: str, message: str, field: str | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.outcome, self.message = status, code, outcome, message
        self.field = field

    def response(self) -> web.Response:
        return json_error(self.status, self.code, self.message, self.field)


def json_error(status: int, code: str, message: str, field: str | None = None) -> web.Response:
    error: dict[str, str] = {"code": code, "message": message}
    if field:
        error["field"] = field
    return web.json_response({"error": error}, status=status)


def invalid(message: str, field: str | None = None) -> HookError:
    return HookError(400, "invalid_request", "invalid", message, field)


def unauthorized(message: str, field: str | None = None) -> HookError:
    return HookError(401, "unauthorized", "bad_signature", message, field)


class Hooks:
    """The webhooks' shared state (one per app, under the HOOKS key)."""

    def __init__(
        self,
        settings: IntegrationsSettings,
        configs: ConfigStore,
        store: DeliveryStore,
        worker: DeliveryWorker,
    ) -> None:
        self.settings = settings
        self.configs = configs
        self.store = store
        self.worker = worker
        self._cache: dict[tuple[str, str], tuple[float, Integration]] = {}

    async def integration(self, tenant: str, kind: str) -> Integration:
        """The tenant's integration of this provider, read at most every
        hooks_config_cache_s (a query and a Fernet decryption per webhook cost about as
        much as the rest of the request); unknown ones are not cached."""
        now = time.monotonic()
        cached = self._cache.get((tenant, kind))
        if cached is not None and cached[0] > now:
            return cached[1]
        found = await self.configs.get(tenant, kind) if _TENANT.match(tenant) else None
        if found is None:
            self._cache.pop((tenant, kind), None)
            raise HookError(
                404, "not_found", "unknown_tenant", f"no {kind} integration for this tenant"
            )
        self._cache[(tenant, kind)] = (now + self.settings.hooks_config_cache_s, found)
        return found

    async def accept(
        self, key: DeliveryKey, event: CiEvent, logs: list[LogSource] = ()
    ) -> web.Response:
        """Record the delivery, then publish (or hand to the worker); the webhook's answer."""
        provider = key[0]
        checked(event)
        work = PendingDelivery(event=event, logs=list(logs), trace=inject())
        if not await self.store.record(key, work, self.settings.hooks_lease_s):
            WEBHOOKS.labels(provider, "duplicate").inc()
            return web.json_response(
                {"status": "duplicate", "event_id": event.event_id}, status=200
            )
        WEBHOOKS.labels(provider, "accepted").inc()
        answer = {"status": "accepted", "event_id": event.event_id}
        if logs:
            # GitHub waits 10 s at most: the log is fetched after the answer.
            self.worker.start(key, work)
            return web.json_response({**answer, "log": "fetching"}, status=202)
        try:
            await self.worker.publish_now(key, event)
        except (NatsError, TimeoutError) as exc:
            # Recorded in Postgres: accepted all the same, published by the worker.
            log.warning("ci event not acked yet; the worker retries", error=type(exc).__name__)
            self.worker.start(key, work)
        return web.json_response(answer, status=202)


HOOKS: web.AppKey[Hooks] = web.AppKey("hooks", Hooks)
_TENANT = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def checked(event: CiEvent) -> None:
    """The event as its consumers will decode it (lengths, patterns), or a 400 naming the
    field: a Struct built in code skips its own constraints."""
    try:
        msgspec.json.decode(msgspec.json.encode(event), type=CiEvent)
    except msgspec.ValidationError as exc:
        raise invalid(f"the event this payload makes is invalid: {exc}", field_of(exc)) from None


def field_of(exc: msgspec.ValidationError) -> str | None:
    """`workflow_run.head_sha` out of msgspec's `Object missing required field `head_sha`
    - at `$.workflow_run``."""
    text = str(exc)
    path = _MSGSPEC_PATH.search(text)
    where = path.group(1) if path else ""
    missing = _MISSING_FIELD.search(text)
    if missing:
        return f"{where}.{missing.group(1)}" if where else missing.group(1)
    return where or None


def decode_payload(body: bytes, decoder: msgspec.json.Decoder[T]) -> T:
    """The payload's fields revo uses, or a 400 naming the field (or the body) at fault."""
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise invalid(f"payload: {exc}", field_of(exc) or "body") from None
    except msgspec.DecodeError as exc:
        raise invalid(f"body is not JSON: {exc}", "body") from None


async def read_body(request: web.Request, limit: int) -> bytes:
    """The raw body (signatures are over these bytes), refused past `limit` even when the
    sender announced less (or chunked it); and refused unless it is UTF-8."""
    if request.content_length is not None and request.content_length > limit:
        raise too_large(limit)
    chunks, size = [], 0
    async for chunk in request.content.iter_chunked(_READ_CHUNK):
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def require_utf8(body: bytes) -> None:
    # msgspec checks only the strings it keeps; a payload is UTF-8 JSON throughout.
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise invalid(f"body is not UTF-8 (byte {exc.start})", "body") from None


def too_large(limit: int) -> HookError:
    return HookError(413, "invalid_request", "too_large", f"body over {limit} bytes", "body")


def refuse_early_if_too_large(request: web.Request) -> None:
    limit = request.app[SETTINGS].max_body_bytes  # type: ignore[attr-defined]
    if request.content_length is not None and request.content_length > limit:
        raise too_large(limit)


def no_content(provider: str, outcome: str = "ignored") -> web.Response:
    WEBHOOKS.labels(provider, outcome).inc()
    return web.Response(status=204)


def delivery_key(provider: str, tenant: str, delivery_id: str | None, header: str) -> DeliveryKey:
    if not delivery_id or not DELIVERY_ID.match(delivery_id):
        raise invalid(f"{header} missing or not a delivery id", header)
    return provider, tenant, delivery_id


Handler = Callable[[web.Request], Awaitable[web.Response]]


def webhook_endpoint(provider: str) -> Callable[[Handler], Handler]:
    """A provider's handler as a server span, its refusals as typed JSON errors (counted)."""
    route = f"/hooks/{provider}/{{tenant}}"

    def wrap(handler: Handler) -> Handler:
        async def endpoint(request: web.Request) -> web.Response:
            with _tracer.start_as_current_span(
                f"POST {route}",
                context=extract(dict(request.headers)),
                kind=SpanKind.SERVER,
                attributes={"http.request.method": "POST", "http.route": route},
            ) as span:
                response = await _answered(provider, handler, request)
                span.set_attribute("http.response.status_code", response.status)
                if response.status >= 500:
                    span.set_status(StatusCode.ERROR)
                return response

        return endpoint

    return wrap


async def _answered(provider: str, handler: Handler, request: web.Request) -> web.Response:
    try:
        return await handler(request)
    except HookError as exc:
        WEBHOOKS.labels(provider, exc.outcome).inc()
        response = exc.response()
        if exc.status == 413:
            # The rest of the body is not read: the connection cannot be reused.
            response.force_close()
        return response
    except DATABASE_AWAY as exc:
        WEBHOOKS.labels(provider, "unavailable").inc()
        log.warning("database unavailable", error=type(exc).__name__)
        return json_error(503, "overloaded", "a database is unavailable; retry shortly")
    except Exception:
        WEBHOOKS.labels(provider, "error").inc()
        log.exception("webhook failed", provider=provider)
        trace_id, _ = current_ids()
        return json_error(500, "internal", f"internal error (trace {trace_id})")


async def hooks_ctx(app: web.Application) -> AsyncIterator[None]:
    settings: IntegrationsSettings = app[SETTINGS]  # type: ignore[assignment]
    timeout = aiohttp.ClientTimeout(total=settings.log_fetch_timeout_s)
    session = aiohttp.ClientSession(timeout=timeout)
    store = DeliveryStore(app[POOL])
    worker = DeliveryWorker(app[BUS], store, app[CONFIGS], LogFetcher(session), settings)
    app[HOOKS] = Hooks(settings, app[CONFIGS], store, worker)
    sweeper = asyncio.create_task(worker.sweep_forever(), name="delivery sweep")
    yield
    sweeper.cancel()
    await worker.close()
    await session.close()


def install(app: web.Application) -> None:
    """The webhook routes and their context (after the database's and the streams')."""
    from revo_integrations import github_hooks, gitlab_hooks

    app.router.add_post("/hooks/github/{tenant}", github_hooks.receive)
    app.router.add_post("/hooks/gitlab/{tenant}", gitlab_hooks.receive)
    app.cleanup_ctx.append(hooks_ctx)
