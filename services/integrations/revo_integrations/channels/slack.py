"""Slack: an incoming webhook, or `chat.postMessage` with a bot token and a channel, through
slack-sdk's async clients (aiohttp, on the service's own session; base URL = the
integration's `api_url`). Their own retry handlers are off: retries, backoff and the
per-channel rate cap are the delivery loop's, which honours a 429's Retry-After.

Slack has no idempotency key: a notification whose earlier attempt was cut off by a crash
after Slack took it may show twice (documented); a delivered one is never sent again.
"""

from __future__ import annotations

import hashlib

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from revo_contracts.integrations import Integration, SlackIntegration
from revo_contracts.notify import Notification
from revo_integrations.channels import (
    DeliveryContext,
    DeliveryFailed,
    failed_status,
    retry_after_s,
)
from revo_integrations.channels.http import client_span

HEADER_MAX = 150  # Slack's limit on a header block's text
SECTION_MAX = 3000  # ... and on a section's
_EMOJI = {"failure": ":red_circle:", "warning": ":warning:", "info": ":information_source:"}


class SlackChannel:
    name = "slack"

    def rate_key(self, note: Notification, integration: Integration) -> str:
        assert isinstance(integration, SlackIntegration)
        # Slack's cap is per channel; an incoming webhook posts to one channel.
        where = integration.channel or hashlib.sha256(integration.webhook_url.encode()).hexdigest()
        return f"slack:{note.tenant}:{where}"

    async def deliver(
        self, ctx: DeliveryContext, note: Notification, integration: Integration
    ) -> None:
        assert isinstance(integration, SlackIntegration)
        ts = await post(ctx, integration, fallback_text(note), blocks(note))
        if ts:
            await ctx.keep(ts=ts)

    async def test(self, ctx: DeliveryContext, integration: Integration) -> None:
        assert isinstance(integration, SlackIntegration)
        text = "revo test notification: this Slack integration works."
        await post(ctx, integration, text, [_section(f":white_check_mark: {text}")])


async def post(
    ctx: DeliveryContext, integration: SlackIntegration, text: str, message_blocks: list[dict]
) -> str:
    """Post the message; the message's `ts` when Slack answers one (chat.postMessage)."""
    if integration.webhook_url:
        return await _post_webhook(ctx, integration.webhook_url, text, message_blocks)
    if integration.token and integration.channel:
        return await _post_message(ctx, integration, text, message_blocks)
    raise DeliveryFailed(
        "the Slack integration has neither a webhook URL nor a token and channel", permanent=True
    )


async def _post_webhook(
    ctx: DeliveryContext, url: str, text: str, message_blocks: list[dict]
) -> str:
    client = AsyncWebhookClient(url, session=ctx.session, retry_handlers=[])
    with client_span("POST", "{slack incoming webhook}", url) as span:
        try:
            response = await client.send(text=text, blocks=message_blocks)
        except Exception as exc:  # aiohttp errors, timeouts
            raise DeliveryFailed(f"Slack webhook: {type(exc).__name__} {exc}") from None
        span.set_attribute("http.response.status_code", response.status_code)
    ctx.answered(response.status_code, response.body)
    if response.status_code != 200:
        retry = retry_after_s((response.headers or {}).get("Retry-After"))
        raise failed_status(response.status_code, f"Slack webhook: {response.body}", retry)
    return ""


async def _post_message(
    ctx: DeliveryContext, integration: SlackIntegration, text: str, message_blocks: list[dict]
) -> str:
    client = AsyncWebClient(
        token=integration.token,
        base_url=integration.api_url.rstrip("/") + "/",
        session=ctx.session,
        retry_handlers=[],
    )
    with client_span("POST", "/chat.postMessage", integration.api_url) as span:
        try:
            response = await client.chat_postMessage(
                channel=integration.channel, text=text, blocks=message_blocks
            )
        except SlackApiError as exc:
            status = exc.response.status_code
            span.set_attribute("http.response.status_code", status)
            error = exc.response.get("error") if isinstance(exc.response.data, dict) else None
            ctx.answered(status, str(error or exc.response.data)[:300])
            if status == 200:  # ok: false, e.g. channel_not_found, invalid_auth
                raise DeliveryFailed(f"Slack chat.postMessage: {error}", permanent=True) from None
            retry = retry_after_s(exc.response.headers.get("Retry-After"))
            raise failed_status(status, f"Slack chat.postMessage: {error}", retry) from None
        except Exception as exc:
            raise DeliveryFailed(f"Slack chat.postMessage: {type(exc).__name__} {exc}") from None
        span.set_attribute("http.response.status_code", response.status_code)
    ctx.answered(response.status_code, "ok")
    return str(response.get("ts") or "")


def fallback_text(note: Notification) -> str:
    """The text of notifications and screen readers (Slack wants one beside blocks)."""
    return f"{note.title}" + (f": {note.failing_test}" if note.failing_test else "")


def blocks(note: Notification) -> list[dict]:
    """Block Kit: title, failing test, root cause with a link, the run's link."""
    emoji = _EMOJI.get(note.severity, "")
    result: list[dict] = [
        {"type": "header", "text": {"type": "plain_text", "text": _cut(note.title, HEADER_MAX)}}
    ]
    facts = []
    if note.repository is not None:
        facts.append(f"*Repository:* <{note.repository.url}|{note.repository.full_name}>")
    if note.failing_test:
        facts.append(f"*Failing test:* `{note.failing_test}`")
    if facts:
        result.append(_section(f"{emoji} " + "\n".join(facts)))
    if note.root_cause:
        cause = f"*Root cause:* {note.root_cause}"
        if note.links:
            cause += f"\n<{note.links[0].url}|{note.links[0].title}>"
        result.append(_section(cause))
    if note.summary:
        result.append(_section(note.summary))
    context = [f"<{link.url}|{link.title}>" for link in note.links[1:]]
    if note.run_id:
        context.append(f"run `{note.run_id}`")
    if context:
        result.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(context)}]}
        )
    return result


def _section(text: str) -> dict:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _cut(text, SECTION_MAX)}}


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
