"""Notifications out, wired: a consumer per channel, the dead letters, and the operator's
endpoints `integrations.notify.dead.list`, `integrations.notify.redrive` and
`integrations.config.test` (docs/services/integrations-notify.md)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from revo_contracts import subjects
from revo_contracts.integrations import Done, IntegrationRef, IntegrationTestResult
from revo_contracts.notify import (
    CHANNELS,
    NotifyDeadListRequest,
    NotifyDeadListResponse,
    NotifyRedriveRequest,
)
from revo_core.endpoints import Endpoints
from revo_core.errors import InvalidRequest, NotFound
from revo_core.logging import get_logger
from revo_core.service import BUS, SETTINGS
from revo_integrations.app_keys import CONFIGS, POOL
from revo_integrations.channels import DeliveryFailed, NotifyChannel, test_context
from revo_integrations.channels.github import GithubChannel
from revo_integrations.channels.jira import JiraChannel
from revo_integrations.channels.slack import SlackChannel
from revo_integrations.channels.webhook import WebhookChannel
from revo_integrations.config_store import ConfigStore
from revo_integrations.dead_letters import DeadLetters
from revo_integrations.delivery import Delivery, RateCaps, RetryPolicy
from revo_integrations.notify_consumer import ChannelConsumer
from revo_integrations.notify_store import NotifyStore
from revo_integrations.settings import IntegrationsSettings

log = get_logger("revo.integrations.notify")


def channels() -> dict[str, NotifyChannel]:
    return {c.name: c for c in (GithubChannel(), SlackChannel(), JiraChannel(), WebhookChannel())}


async def notifications_ctx(app: web.Application) -> AsyncIterator[None]:
    """After the database and the streams (app.py's contexts) are up."""
    settings: IntegrationsSettings = app[SETTINGS]  # type: ignore[assignment]
    bus = app[BUS]
    store = NotifyStore(app[POOL])
    store.start()
    dead_letters = DeadLetters(bus, store)
    timeout = aiohttp.ClientTimeout(total=settings.notify_http_timeout_s)
    # No cookie jar: nothing one tenant's destination sets may ride along to another's
    # (and aiohttp's cookie handling is a measurable share of each call's CPU).
    session = aiohttp.ClientSession(
        timeout=timeout,
        connector=aiohttp.TCPConnector(limit=4 * settings.notify_concurrency),
        cookie_jar=aiohttp.DummyCookieJar(),
    )
    delivery = Delivery(
        channels(),
        app[CONFIGS],
        store,
        dead_letters,
        session,
        RetryPolicy(
            settings.notify_max_attempts,
            settings.notify_backoff_base_s,
            settings.notify_backoff_max_s,
        ),
        RateCaps(
            {
                "slack": settings.notify_rate_slack,
                "github": settings.notify_rate_github,
                "jira": settings.notify_rate_jira,
                "webhook": settings.notify_rate_webhook,
            },
            settings.notify_rate_burst,
        ),
    )
    consumers = [
        ChannelConsumer(
            bus, channel, delivery, settings.notify_concurrency, settings.notify_ack_wait_s
        )
        for channel in CHANNELS
    ]
    for consumer in consumers:
        await consumer.start()
    endpoints = Endpoints(bus, "integrations_notify", description="notifications out")
    await endpoints.start()
    await add_endpoints(endpoints, dead_letters, app[CONFIGS], session)
    log.info("notifications out ready", channels=list(CHANNELS))
    yield
    await endpoints.stop(grace=5)
    for consumer in consumers:
        await consumer.stop(grace=settings.drain_grace_s)
    await session.close()
    await store.stop()


async def add_endpoints(
    endpoints: Endpoints,
    dead_letters: DeadLetters,
    configs: ConfigStore,
    session: aiohttp.ClientSession,
) -> None:
    async def dead_list(request: NotifyDeadListRequest) -> NotifyDeadListResponse:
        return NotifyDeadListResponse(dead=await dead_letters.list(request))

    async def redrive(request: NotifyRedriveRequest) -> Done:
        return Done(count=await dead_letters.redrive(request))

    async def config_test(ref: IntegrationRef) -> IntegrationTestResult:
        return await send_test(ref, configs, session)

    group = subjects.INTEGRATIONS_QUEUE_GROUP
    await endpoints.add(
        "notify_dead_list",
        subjects.INTEGRATIONS_NOTIFY_DEAD_LIST,
        NotifyDeadListRequest,
        dead_list,
        queue_group=group,
    )
    await endpoints.add(
        "notify_redrive",
        subjects.INTEGRATIONS_NOTIFY_REDRIVE,
        NotifyRedriveRequest,
        redrive,
        queue_group=group,
    )
    await endpoints.add(
        "config_test",
        subjects.INTEGRATIONS_CONFIG_TEST,
        IntegrationRef,
        config_test,
        queue_group=group,
    )


async def send_test(
    ref: IntegrationRef, configs: ConfigStore, session: aiohttp.ClientSession
) -> IntegrationTestResult:
    """A real test notification through the tenant's integration, and what the destination
    answered (a refusal is an answer too: delivered false, with its status)."""
    channel = channels().get(ref.kind)
    if channel is None:
        raise InvalidRequest(f"{ref.kind} is not a notification channel", {"field": "kind"})
    integration = await configs.get(ref.tenant, ref.kind)
    if integration is None:
        raise NotFound(f"tenant {ref.tenant} has no {ref.kind} integration")
    ctx = test_context(session)
    try:
        await channel.test(ctx, integration)
    except DeliveryFailed as failed:
        status = failed.status if failed.status is not None else _last_status(ctx)
        return IntegrationTestResult(delivered=False, status=status, detail=failed.detail[:1000])
    status, detail = ctx.answers[-1] if ctx.answers else (None, "")
    return IntegrationTestResult(delivered=True, status=status, detail=detail)


def _last_status(ctx) -> int | None:
    return ctx.answers[-1][0] if ctx.answers else None
