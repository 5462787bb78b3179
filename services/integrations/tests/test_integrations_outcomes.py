"""A run the CI trigger started is announced once it ends: one notification per channel of
the policy, once, continuing the run's trace."""

from __future__ import annotations

import asyncio
import time

import msgspec
from nats.js.api import ConsumerConfig, DeliverPolicy

from revo_contracts import subjects
from revo_contracts.ci import CiEvent, CiRepository
from revo_contracts.notify import Notification
from revo_contracts.runs import RunFailed, RunFinished
from revo_contracts.streams import NOTIFY, RUN_EVENTS
from revo_core import tracing
from revo_core.jetstream import ensure_streams
from revo_core.runs import new_run_id
from revo_integrations.outcomes import OutcomeAnnouncer

TENANT = "outcomes-acme"


def ci_event(event_id: str) -> CiEvent:
    return CiEvent(
        event_id=event_id,
        tenant=TENANT,
        provider="github",
        status="failure",
        repository=CiRepository(full_name="acme/shop", url="https://github.com/acme/shop"),
        commit_sha="0123456789abcdef0123456789abcdef01234567",
        workflow="ci",
        job="tests",
        job_url="https://github.com/acme/shop/actions/runs/1/job/2",
        pr_number=7,
    )


async def notifications_for(bus, run_id: str, wait_s: float = 10.0) -> list[Notification]:
    """Every notification of `run_id` on NOTIFY, once the first has arrived."""
    return [notification for notification, _ in await messages_for(bus, run_id, wait_s)]


async def messages_for(bus, run_id: str, wait_s: float = 10.0) -> list[tuple[Notification, dict]]:
    """Every notification of `run_id` on NOTIFY with its headers, once the first arrived."""
    subscription = await bus.js.pull_subscribe(
        subjects.NOTIFY_ALL,
        stream=NOTIFY.name,
        config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL),
    )
    found: list[tuple[Notification, dict]] = []
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline and not found:
        try:
            messages = await subscription.fetch(100, timeout=0.5)
        except TimeoutError:
            continue
        for message in messages:
            notification = msgspec.json.decode(message.data, type=Notification)
            if notification.run_id == run_id:
                found.append((notification, dict(message.headers or {})))
    await subscription.unsubscribe()
    return found


async def test_a_finished_run_is_announced_once_on_each_channel_in_the_run_s_trace(
    integrations, integrations_bus, pg
):
    bus = integrations_bus
    await ensure_streams(bus.js, (RUN_EVENTS, NOTIFY))
    run_id = new_run_id()
    await OutcomeAnnouncer(bus, pg).watch(run_id, ci_event(f"gh-{run_id}"), ["slack", "webhook"])
    assert await notifications_for(bus, run_id, wait_s=1.5) == []  # not ended: nothing yet

    with tracing.internal_span("runner") as span:
        trace_id = format(span.get_span_context().trace_id, "032x")
        finished = RunFinished(
            run_id=run_id, tenant=TENANT, seq=3, ts=time.time(), answer="tests/test_cart.py:12"
        )
        await bus.js_publish(subjects.runs_events(TENANT, run_id), finished)

    await notifications_for(bus, run_id)
    await asyncio.sleep(2.5)  # more passes of the announcer: still one per channel
    messages = await messages_for(bus, run_id)
    announced = [notification for notification, _ in messages]
    assert all(trace_id in headers["traceparent"] for _, headers in messages)
    assert sorted(n.channel for n in announced) == ["slack", "webhook"]
    slack = next(n for n in announced if n.channel == "slack")
    assert slack.notification_id == f"{run_id}.slack"
    assert slack.title == "CI failure: acme/shop ci / tests at 0123456"
    assert slack.root_cause == "tests/test_cart.py:12"
    assert slack.signature == ci_event("x").failure_signature()
    assert slack.pr_number == 7
    assert [link.url for link in slack.links] == [
        "https://github.com/acme/shop/actions/runs/1/job/2"
    ]
    row = await pg.fetchrow(
        "SELECT state FROM integrations.announcements WHERE run_id = $1", run_id
    )
    assert row["state"] == "announced"


async def test_a_failed_investigation_is_announced_as_a_warning_with_its_reason(
    integrations, integrations_bus, pg
):
    bus = integrations_bus
    await ensure_streams(bus.js, (RUN_EVENTS, NOTIFY))
    run_id = new_run_id()
    await OutcomeAnnouncer(bus, pg).watch(run_id, ci_event(f"gh-{run_id}"), ["jira"])
    failed = RunFailed(
        run_id=run_id, tenant=TENANT, seq=2, ts=time.time(), code="gave_up", reason="no log"
    )
    await bus.js_publish(subjects.runs_events(TENANT, run_id), failed)
    [jira] = await notifications_for(bus, run_id)
    assert jira.severity == "warning"
    assert jira.summary == "The investigation failed (gave_up): no log"
    assert jira.root_cause == ""
