"""The whole CI path in one trace: a GitHub webhook → its CiEvent (log fetched into CI_LOGS) →
the tenant's CI policy submits one run → the agent-runner runs it → its outcome is announced
→ the notification is delivered to a signed webhook receiver. Every hop's span is read back
from what the services really exported."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from hooks_testkit import (
    GITHUB_TOKEN,
    WEBHOOK_SECRET,
    FakeGithub,
    github_hook,
    serve,
    wait_for_event,
    workflow_job,
)
from notify_fakes import WebhookReceiver

from revo_contracts import subjects
from revo_contracts.integrations import (
    CiPolicy,
    GithubIntegration,
    IntegrationPut,
    PolicyPut,
    WebhookIntegration,
)
from revo_contracts.integrations import Done as IntegrationDone
from revo_contracts.streams import RUN_EVENTS
from revo_core.ci_logs import read_log
from revo_core.testing.fixtures import operator_bus
from revo_integrations.ci_trigger import ci_run_id

RECEIVER_SECRET = "whsec_" + "dGhlLXJlY2VpdmVyLXNlY3JldC1vZi1hLXRlc3Q="
LOG = b"collected 12 items\ntests/test_cart.py::test_total FAILED\nE   assert 41 == 42\n"


@pytest.fixture
async def flow_service(scripted_nats, scripted_runner, integrations_factory):
    """An integrations service on the scripted world, beside a real agent-runner."""
    service = integrations_factory.start(
        scripted_nats.url,
        "integrations-flow",
        REVO_INTEGRATIONS_HOOKS_CONFIG_CACHE_S="0",
        REVO_INTEGRATIONS_ANNOUNCE_EVERY_S="0.2",
    )
    yield service
    service.stop()


async def configure(bus, tenant: str, github_url: str, receiver_url: str) -> None:
    github = GithubIntegration(
        webhook_secret=WEBHOOK_SECRET, token=GITHUB_TOKEN, api_url=github_url
    )
    webhook = WebhookIntegration(url=receiver_url, secret=RECEIVER_SECRET)
    for integration in (github, webhook):
        put = IntegrationPut(tenant=tenant, integration=integration)
        await bus.request(subjects.INTEGRATIONS_CONFIG_PUT, put, IntegrationDone)
    policy = CiPolicy(agent="chatty", notify=["webhook"])
    await bus.request(
        subjects.INTEGRATIONS_POLICY_PUT, PolicyPut(tenant=tenant, policy=policy), CiPolicy
    )


async def runs_of(bus, tenant: str) -> list[str]:
    """The runs of a tenant, by the event logs RUN_EVENTS holds."""
    info = await bus.js.stream_info(RUN_EVENTS.name, subjects_filter=f"runs.events.{tenant}.*")
    return sorted(subject.rsplit(".", 1)[1] for subject in (info.state.subjects or {}))


async def eventually(check, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < end, "timed out"
        await asyncio.sleep(0.1)


async def test_a_failed_github_job_is_investigated_and_announced_in_one_trace(
    flow_service, scripted_nats, otlp_receiver
):
    tenant = f"flow-{uuid.uuid4().hex[:8]}"
    bus = await operator_bus(scripted_nats, "pytest-ci-flow")
    github, receiver = FakeGithub(), WebhookReceiver(RECEIVER_SECRET)
    github_runner, github.url = await serve(github.app())
    await receiver.start()
    try:
        await configure(bus, tenant, github.url, receiver.hook_url)
        github.logs["4321"] = LOG
        delivery = str(uuid.uuid4())
        payload = workflow_job(4321, 99)
        status, _ = await github_hook(flow_service, tenant, "workflow_job", payload, delivery)
        assert status == 202

        event, headers = await wait_for_event(bus.js, tenant, "github")
        assert await read_log(bus.js, tenant, event.log) == LOG.decode()
        run_id = ci_run_id(tenant, event.failure_signature(), event.event_id)
        await eventually(
            lambda: any(d["data"]["run_id"] == run_id for d in receiver.delivered.values())
        )
        # GitHub redelivers the same webhook: no second event, no second run.
        again, answer = await github_hook(flow_service, tenant, "workflow_job", payload, delivery)
        assert (again, answer["status"]) == (200, "duplicate")
        await asyncio.sleep(2)
        assert await runs_of(bus, tenant) == [run_id]
        [delivered] = receiver.delivered.values()
        assert delivered["data"]["title"].startswith("CI failure: acme/shop CI / test (3.11)")
        assert delivered["data"]["signature"] == event.failure_signature()

        trace_id = headers["traceparent"].split("-")[1]
        span = lambda name: otlp_receiver.wait_for(trace_id, name, timeout=30)  # noqa: E731
        webhook = span("POST /hooks/github/{tenant}")
        # The log is fetched after the 202, in work that continues the webhook's trace.
        completed = span("ci delivery complete")
        event_out = span(f"ci.events.{tenant}.github publish")
        event_in = span(f"ci.events.{tenant}.github process")
        submit_out = span(f"runs.submit.{tenant} publish")
        submit_in = span(f"runs.submit.{tenant} process")
        outcome_in = span(f"runs.events.{tenant}.{run_id} process")
        notify_out = span(f"notify.webhook.{tenant} publish")
        notify_in = span(f"notify.webhook.{tenant} process")
        delivery = span("POST {webhook url}")

        assert completed.parent_span_id == webhook.span_id
        assert event_out.parent_span_id == completed.span_id
        assert event_in.parent_span_id == event_out.span_id
        assert submit_out.parent_span_id == event_in.span_id
        assert submit_in.parent_span_id == submit_out.span_id
        assert notify_out.parent_span_id == outcome_in.span_id
        assert notify_in.parent_span_id == notify_out.span_id
        assert delivery.attributes["http.response.status_code"] == 200
        assert {webhook.service, event_in.service, outcome_in.service, delivery.service} == {
            "integrations"
        }
        assert submit_in.service == "agent-runner"
    finally:
        await receiver.stop()
        await github_runner.cleanup()
        await bus.close()
