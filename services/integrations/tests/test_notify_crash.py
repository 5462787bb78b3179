"""kill -9 of the integrations service while a destination is answering slowly: after the
restart the notification is delivered, and nothing is posted twice (GitHub: the comment is
found by its marker and updated; Jira: the issue is found by its notification label; a
webhook receiver dedupes by webhook-id)."""

from __future__ import annotations

import asyncio
import uuid

from notify_fakes import FakeGithub, FakeJira, Started, WebhookReceiver
from test_notify_delivery import (
    GITHUB_TOKEN,
    NOTIFY_TEST_SETTINGS,
    WEBHOOK_SECRET,
    eventually,
    notification,
    publish,
)

from revo_contracts.integrations import GithubIntegration, JiraIntegration, WebhookIntegration
from revo_core.testing.fixtures import INTEGRATIONS_SECRET_KEY, nats_server_of, operator_bus
from revo_integrations.config_store import ConfigStore
from revo_integrations.secret_box import SecretBox

SLOW_S = 30.0


async def test_a_delivery_cut_by_kill_9_is_delivered_after_the_restart_and_not_posted_twice(
    revo_tmp, bus_authority, integrations_factory, pg
):
    # A NATS of its own: no other integrations service may take the redelivery.
    nats = nats_server_of(revo_tmp / "nats-notify-crash", bus_authority)
    bus = await operator_bus(nats, "pytest-notify-crash")
    fakes = Started()
    service = None
    try:
        service = await asyncio.to_thread(
            integrations_factory.start,
            nats.url,
            "integrations-notify-crash",
            **NOTIFY_TEST_SETTINGS,
        )
        configs = ConfigStore(pg, SecretBox(INTEGRATIONS_SECRET_KEY))
        tenant = f"crash-{uuid.uuid4().hex[:8]}"
        github = await fakes.start(FakeGithub(GITHUB_TOKEN))
        github.comment_delay_s = SLOW_S  # takes the comment, then answers late
        receiver = await fakes.start(WebhookReceiver(WEBHOOK_SECRET, delay_s=SLOW_S))
        jira = await fakes.start(FakeJira("bot@acme.dev", "jira-token", "OPS"))
        jira.create_delay_s = SLOW_S
        await configs.put(tenant, GithubIntegration(token=GITHUB_TOKEN, api_url=github.url))
        await configs.put(tenant, WebhookIntegration(url=receiver.hook_url, secret=WEBHOOK_SECRET))
        await configs.put(
            tenant,
            JiraIntegration(
                site=jira.url, email="bot@acme.dev", api_token="jira-token", project="OPS"
            ),
        )

        on_github = notification(tenant, "github", pr_number=12)
        on_webhook = notification(tenant, "webhook")
        on_jira = notification(tenant, "jira")
        await publish(bus, on_github)
        await publish(bus, on_webhook)
        await publish(bus, on_jira)
        await eventually(
            lambda: len(github.comments) == 1 and len(receiver.seen) == 1 and len(jira.issues) == 1
        )
        service.kill()

        github.comment_delay_s = 0.0
        receiver.delay_s = 0.0
        jira.create_delay_s = 0.0
        service.start()
        await asyncio.to_thread(service.wait_ready, 60)

        await eventually(lambda: on_webhook.notification_id in receiver.delivered, timeout=30)
        # The redelivered GitHub notification found the comment it had made and updated it.
        await eventually(lambda: any(s.method == "PATCH" for s in github.seen), timeout=30)
        assert len(github.comments) == 1
        assert len(github.check_runs) == 1
        posts = [s for s in github.seen if s.method == "POST" and s.path.endswith("/comments")]
        assert len(posts) == 1
        # The receiver was called again with the same webhook-id, and kept it once.
        assert len(receiver.seen) >= 2
        assert {s.headers["webhook-id"] for s in receiver.seen} == {on_webhook.notification_id}
        assert list(receiver.delivered) == [on_webhook.notification_id]
        # Jira: the issue the cut attempt made is found by its notification label, and
        # neither opened again nor commented on (it says the same).
        searches = lambda: [s for s in jira.seen if s.path.endswith("/search/jql")]  # noqa: E731
        await eventually(lambda: any("revo-n-" in s.body["jql"] for s in searches()), timeout=30)
        await asyncio.sleep(1.0)
        [(_, issue)] = jira.issues.items()
        assert issue["comments"] == []
        assert github.problems == [] and receiver.problems == [] and jira.problems == []
    finally:
        await fakes.stop()
        await bus.close()
        if service is not None:
            service.stop(timeout=10)
        nats.stop()
