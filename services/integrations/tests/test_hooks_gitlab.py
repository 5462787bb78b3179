"""GitLab Pipeline and Job hooks into CiEvents, the job traces fetched from a fake GitLab API."""

from __future__ import annotations

import json
import uuid

import pytest
from hooks_testkit import (
    GITLAB_TOKEN,
    FakeGitlab,
    events_on,
    gitlab_build,
    gitlab_job,
    gitlab_pipeline,
    post,
    serve,
    wait_for_event,
)

from revo_contracts.integrations import GitlabIntegration
from revo_core.ci_logs import read_log
from revo_core.testing.fixtures import INTEGRATIONS_SECRET_KEY
from revo_core.testing.metrics import metric_value
from revo_integrations.config_store import ConfigStore
from revo_integrations.secret_box import SecretBox

HOOK_TOKEN = "gitlab-webhook-secret-token"


@pytest.fixture(scope="module")
def gitlab_service(integrations_nats, integrations_factory):
    service = integrations_factory.start(
        integrations_nats.url,
        "integrations-gitlab-hooks",
        REVO_INTEGRATIONS_HOOKS_CONFIG_CACHE_S="0",
        REVO_INTEGRATIONS_LOG_FETCH_BACKOFF_S="0.1",
    )
    yield service
    service.stop()  # no replica left behind on the shared NATS for later modules


@pytest.fixture(scope="module")
async def fake_gitlab():
    fake = FakeGitlab()
    runner, fake.url = await serve(fake.app())
    yield fake
    await runner.cleanup()


@pytest.fixture
async def tenant(gitlab_service, pg, fake_gitlab) -> str:
    name = f"gl-{uuid.uuid4().hex[:10]}"
    integration = GitlabIntegration(
        webhook_token=HOOK_TOKEN, token=GITLAB_TOKEN, api_url=f"{fake_gitlab.url}/api/v4"
    )
    await ConfigStore(pg, SecretBox(INTEGRATIONS_SECRET_KEY)).put(name, integration)
    return name


async def gitlab_hook(
    service, tenant: str, kind: str, payload: dict, token: str | None = HOOK_TOKEN, **headers
) -> tuple[int, dict | None]:
    sent = {"X-Gitlab-Event": kind, "Content-Type": "application/json", **headers}
    if token is not None:
        sent["X-Gitlab-Token"] = token
    return await post(service, f"/hooks/gitlab/{tenant}", json.dumps(payload).encode(), sent)


async def test_a_failed_pipeline_brings_the_traces_of_its_failed_jobs(
    gitlab_service, tenant, fake_gitlab, integrations_bus
):
    fake_gitlab.traces["301"] = b"$ bundle exec rspec\n1 example, 1 failure\n"
    fake_gitlab.traces["302"] = b"$ rubocop\nC: 3 offenses\n"
    builds = [
        gitlab_build(300, "compile", "success"),
        gitlab_build(301, "rspec", "failed"),
        gitlab_build(302, "rubocop", "failed"),
    ]
    status, answer = await gitlab_hook(
        gitlab_service, tenant, "Pipeline Hook", gitlab_pipeline(9001, builds)
    )
    assert status == 202 and answer["log"] == "fetching"

    event, headers = await wait_for_event(integrations_bus.js, tenant, "gitlab")
    assert headers["Nats-Msg-Id"] == event.event_id
    assert (event.status, event.workflow_id, event.job, event.job_id) == (
        "failure",
        "9001",
        "rspec, rubocop",
        "301,302",
    )
    assert event.repository.full_name == "acme/shop" and event.branch == "main"
    assert event.url == "https://gitlab.example/acme/shop/-/pipelines/9001"
    text = await read_log(integrations_bus.js, tenant, event.log)
    assert "===== job rspec =====\n$ bundle exec rspec" in text
    assert "===== job rubocop =====\n$ rubocop" in text
    assert sorted(fake_gitlab.calls) == [
        "/api/v4/projects/77/jobs/301/trace",
        "/api/v4/projects/77/jobs/302/trace",
    ]


async def test_a_job_that_timed_out_is_one_event_with_its_trace(
    gitlab_service, tenant, fake_gitlab, integrations_bus
):
    fake_gitlab.traces["401"] = b"ERROR: Job failed: execution took longer than 1h0m0s\n"
    payload = gitlab_job(401, reason="job_execution_timeout")
    status, _ = await gitlab_hook(gitlab_service, tenant, "Job Hook", payload)
    assert status == 202
    event, _ = await wait_for_event(integrations_bus.js, tenant, "gitlab")
    assert (event.status, event.job, event.job_id, event.workflow_id) == (
        "timed_out",
        "rspec",
        "401",
        "9001",
    )
    assert event.job_url == "https://gitlab.example/acme/shop/-/jobs/401"
    assert event.log.text.startswith("ERROR: Job failed")


async def test_a_wrong_or_missing_token_is_401_and_nothing_is_published(
    gitlab_service, tenant, integrations_bus
):
    payload = gitlab_job(501)
    for token in ("not-the-token", None):
        status, answer = await gitlab_hook(gitlab_service, tenant, "Job Hook", payload, token)
        assert status == 401 and answer["error"]["field"] == "X-Gitlab-Token"
    assert await events_on(integrations_bus.js, tenant, "gitlab") == 0
    assert metric_value(
        gitlab_service, "revo_integrations_webhooks_total", provider="gitlab",
        outcome="bad_signature",
    ) >= 2  # fmt: skip


async def test_a_retried_delivery_is_one_event_and_passing_or_other_hooks_are_ignored(
    gitlab_service, tenant, fake_gitlab, integrations_bus
):
    fake_gitlab.traces["601"] = b"failed\n"
    key = str(uuid.uuid4())
    payload = gitlab_job(601)
    first = await gitlab_hook(
        gitlab_service, tenant, "Job Hook", payload, **{"Idempotency-Key": key}
    )
    again = await gitlab_hook(
        gitlab_service, tenant, "Job Hook", payload, **{"Idempotency-Key": key}
    )
    assert (first[0], again[0], again[1]["status"]) == (202, 200, "duplicate")

    passed = await gitlab_hook(gitlab_service, tenant, "Job Hook", gitlab_job(602, "success"))
    push = await gitlab_hook(gitlab_service, tenant, "Push Hook", {"object_kind": "push"})
    green = gitlab_pipeline(9002, [gitlab_build(603, "rspec", "success")], status="success")
    pipeline = await gitlab_hook(gitlab_service, tenant, "Pipeline Hook", green)
    assert [passed[0], push[0], pipeline[0]] == [204, 204, 204]

    await wait_for_event(integrations_bus.js, tenant, "gitlab")
    assert await events_on(integrations_bus.js, tenant, "gitlab") == 1
