"""An accepted webhook survives `kill -9` of the service while its log is being fetched:
after a restart the event is published, exactly once."""

from __future__ import annotations

import asyncio
import time
import uuid

from hooks_testkit import (
    GITHUB_TOKEN,
    WEBHOOK_SECRET,
    FakeGithub,
    events_on,
    github_hook,
    serve,
    wait_for_event,
    workflow_job,
)

from revo_contracts.integrations import GithubIntegration
from revo_core.ci_logs import read_log
from revo_core.testing.fixtures import INTEGRATIONS_SECRET_KEY
from revo_core.testing.metrics import metric_value
from revo_integrations.config_store import ConfigStore
from revo_integrations.secret_box import SecretBox

SHORT_LEASE = {
    "REVO_INTEGRATIONS_HOOKS_LEASE_S": "2",
    "REVO_INTEGRATIONS_HOOKS_SWEEP_S": "0.3",
    "REVO_INTEGRATIONS_HOOKS_CONFIG_CACHE_S": "0",
}


def stop_own(factory, prefix: str) -> None:
    """Stop this test's services: no replica is left on the shared NATS for later tests."""
    for process in factory.processes:
        if process.log_file.stem.startswith(prefix):
            process.stop(timeout=10)


async def wait_until(check, timeout: float = 15.0) -> None:
    end = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < end, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_kill_9_while_github_is_slow_with_the_log_then_restart_publishes_once(
    integrations_nats, integrations_factory, integrations_bus, pg
):
    fake = FakeGithub()
    runner, fake.url = await serve(fake.app())
    tenant = f"gh-kill-{uuid.uuid4().hex[:8]}"
    integration = GithubIntegration(
        webhook_secret=WEBHOOK_SECRET, token=GITHUB_TOKEN, api_url=fake.url
    )
    first = integrations_factory.start(integrations_nats.url, "hooks-kill-1", **SHORT_LEASE)
    await ConfigStore(pg, SecretBox(INTEGRATIONS_SECRET_KEY)).put(tenant, integration)
    fake.logs["777"] = b"step 1\nstep 2\nFAILED: the log that was slow to come\n"
    fake.held["777"] = asyncio.Event()
    try:
        started = time.monotonic()
        status, answer = await github_hook(first, tenant, "workflow_job", workflow_job(777, 42))
        # Answered at once, though GitHub has not sent the log yet.
        assert status == 202 and time.monotonic() - started < 2.0
        await wait_until(lambda: "/blob/777" in fake.calls)

        first.kill()  # SIGKILL mid-fetch
        assert await events_on(integrations_bus.js, tenant, "github") == 0
        row = await pg.fetchrow(
            "SELECT state FROM integrations.hook_deliveries WHERE tenant = $1", tenant
        )
        assert row["state"] == "pending"

        second = integrations_factory.start(integrations_nats.url, "hooks-kill-2", **SHORT_LEASE)
        # The lease lapses, the restarted service takes the delivery over and asks again.
        await wait_until(lambda: fake.calls.count("/blob/777") >= 2)
        fake.held["777"].set()
        event, headers = await wait_for_event(integrations_bus.js, tenant, "github")
        assert event.event_id == answer["event_id"] == headers["Nats-Msg-Id"]
        assert "slow to come" in await read_log(integrations_bus.js, tenant, event.log)

        await asyncio.sleep(3)  # another lease would have lapsed by now
        assert await events_on(integrations_bus.js, tenant, "github") == 1
        row = await pg.fetchrow(
            "SELECT state, attempts FROM integrations.hook_deliveries WHERE tenant = $1", tenant
        )
        assert row["state"] == "published" and row["attempts"] >= 2
        # Any live replica may take a lapsed lease over (other tests' services run too).
        live = [p for p in integrations_factory.processes if p.process.poll() is None]
        assert second in live and first not in live

        def completed(outcome: str) -> float:
            name = "revo_integrations_hook_deliveries_total"
            return sum(metric_value(p, name, provider="github", outcome=outcome) for p in live)

        assert completed("taken_over") >= 1 and completed("published") >= 1
    finally:
        fake.held["777"].set()
        await runner.cleanup()
        stop_own(integrations_factory, "hooks-kill-")


async def test_a_graceful_stop_mid_fetch_hands_the_delivery_over_without_waiting_out_the_lease(
    integrations_nats, integrations_factory, integrations_bus, pg
):
    fake = FakeGithub()
    runner, fake.url = await serve(fake.app())
    tenant = f"gh-stop-{uuid.uuid4().hex[:8]}"
    long_lease = {**SHORT_LEASE, "REVO_INTEGRATIONS_HOOKS_LEASE_S": "600"}
    first = integrations_factory.start(integrations_nats.url, "hooks-stop-1", **long_lease)
    integration = GithubIntegration(
        webhook_secret=WEBHOOK_SECRET, token=GITHUB_TOKEN, api_url=fake.url
    )
    await ConfigStore(pg, SecretBox(INTEGRATIONS_SECRET_KEY)).put(tenant, integration)
    fake.logs["888"] = b"FAILED after a graceful stop\n"
    fake.held["888"] = asyncio.Event()
    try:
        status, _ = await github_hook(first, tenant, "workflow_job", workflow_job(888, 43))
        assert status == 202
        await wait_until(lambda: "/blob/888" in fake.calls)
        assert first.stop(timeout=10) is not None  # SIGTERM: drains, gives the lease up
        fake.held["888"].set()

        integrations_factory.start(integrations_nats.url, "hooks-stop-2", **long_lease)
        event, _ = await wait_for_event(integrations_bus.js, tenant, "github", timeout=15)
        assert "graceful stop" in await read_log(integrations_bus.js, tenant, event.log)
        assert await events_on(integrations_bus.js, tenant, "github") == 1
    finally:
        fake.held["888"].set()
        await runner.cleanup()
        stop_own(integrations_factory, "hooks-stop-")
