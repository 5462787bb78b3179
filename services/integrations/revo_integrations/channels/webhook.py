"""Generic webhook: the notification as JSON, signed with the Standard Webhooks scheme.

`webhook-id` is the notification id, the same on every retry, so a receiver dedupes with
it (the scheme says so); `webhook-timestamp` and `webhook-signature` ("v1,<base64
HMAC-SHA256 of id.timestamp.body>") come from the `standardwebhooks` package, so any
Standard Webhooks verifier accepts them.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

import msgspec
from standardwebhooks import Webhook

from revo_contracts.integrations import Integration, WebhookIntegration
from revo_contracts.notify import Notification
from revo_integrations.channels import DeliveryContext, DeliveryFailed
from revo_integrations.channels.http import call

ROUTE = "{webhook url}"


class WebhookChannel:
    name = "webhook"

    def rate_key(self, note: Notification, integration: Integration) -> str:
        return f"webhook:{note.tenant}"

    async def deliver(
        self, ctx: DeliveryContext, note: Notification, integration: Integration
    ) -> None:
        assert isinstance(integration, WebhookIntegration)
        body = msgspec.json.encode({"type": "revo.notification", "data": note})
        # Nothing to keep: the receiver dedupes a retry by its webhook-id.
        await post_signed(ctx, integration, note.notification_id, body)

    async def test(self, ctx: DeliveryContext, integration: Integration) -> None:
        assert isinstance(integration, WebhookIntegration)
        test_id = f"test-{uuid.uuid4().hex}"
        body = msgspec.json.encode(
            {"type": "revo.test", "data": {"notification_id": test_id, "at": time.time()}}
        )
        await post_signed(ctx, integration, test_id, body)


async def post_signed(
    ctx: DeliveryContext, integration: WebhookIntegration, message_id: str, body: bytes
) -> int:
    if not integration.secret:
        raise DeliveryFailed("the webhook integration has no signing secret", permanent=True)
    now = datetime.now(UTC)
    try:
        signature = Webhook(integration.secret).sign(message_id, now, body.decode())
    except Exception as exc:  # a secret that is not base64: the operator must fix it
        raise DeliveryFailed(f"the webhook secret is unusable: {exc}", permanent=True) from None
    headers = {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
    }
    answer = await call(ctx, "POST", integration.url, ROUTE, data=body, headers=headers)
    return answer.status
