"""GitHub webhooks into CiEvents: signatures, dedupe, logs fetched from a fake GitHub API,
bad input answered with typed errors, and the trace from the webhook to the event."""

from __future__ import annotations

import asyncio
import json
import uuid

import aiohttp
import pytest
from hooks_testkit import (
    GITHUB_TOKEN,
    WEBHOOK_SECRET,
    FakeGithub,
    check_run,
    events_on,
    github_hook,
    job,
    post,
    serve,
    sign,
    wait_for_event,
    workflow_job,
    workflow_run,
)
from opentelemetry import trace

from revo_contracts.integrations import GithubIntegration, SlackIntegration
from revo_core.ci_logs import read_log
from revo_core.testing.fixtures import INTEGRATIONS_SECRET_KEY
from revo_core.testing.metrics import metric_value
from revo_core.tracing import inject
from revo_integrations.config_store import ConfigStore
from revo_integrations.secret_box import SecretBox

WEBHOOKS = "revo_integrations_webhooks_total"
MAX_BODY = 1024 * 1024


@pytest.fixture(scope="module")
def hooks_service(integrations_nats, integrations_factory):
    """A service of these tests' own: a small body limit, and no config cache (each test
    configures its tenant just before its first webhook)."""
    service = integrations_factory.start(
        integrations_nats.url,
        "integrations-github-hooks",
        REVO_INTEGRATIONS_MAX_BODY_BYTES=str(MAX_BODY),
        REVO_INTEGRATIONS_HOOKS_CONFIG_CACHE_S="0",
        REVO_INTEGRATIONS_LOG_FETCH_BACKOFF_S="0.1",
    )
    yield service
    service.stop()  # no replica left behind on the shared NATS for later modules


@pytest.fixture(scope="module")
async def fake_github():
    fake = FakeGithub()
    runner, fake.url = await serve(fake.app())
    yield fake
    await runner.cleanup()


@pytest.fixture
async def tenant(hooks_service, pg, fake_github) -> str:
    """A tenant of its own per test, with a GitHub integration pointing at the fake API."""
    name = f"gh-{uuid.uuid4().hex[:10]}"
    integration = GithubIntegration(
        webhook_secret=WEBHOOK_SECRET, token=GITHUB_TOKEN, api_url=fake_github.url
    )
    await ConfigStore(pg, SecretBox(INTEGRATIONS_SECRET_KEY)).put(name, integration)
    return name


def counted(service, outcome: str) -> float:
    return metric_value(service, WEBHOOKS, provider="github", outcome=outcome)


async def test_a_failed_workflow_run_lists_its_jobs_fetches_the_failed_log_and_publishes_it(
    hooks_service, tenant, fake_github, integrations_bus
):
    fake_github.runs["5001"] = [job(61, "lint", "success"), job(62, "test (3.11)", "failure")]
    # Past the inline limit: the log goes to the CI_LOGS object store.
    log = b"collecting ...\n" + b"test_cart.py::test_total PASSED\n" * 4000 + b"E  assert 3 == 4\n"
    fake_github.logs["62"] = log

    status, answer = await github_hook(hooks_service, tenant, "workflow_run", workflow_run(5001))
    assert status == 202 and answer["status"] == "accepted" and answer["log"] == "fetching"

    event, headers = await wait_for_event(integrations_bus.js, tenant, "github")
    assert headers["Nats-Msg-Id"] == event.event_id == answer["event_id"]
    assert (event.status, event.workflow, event.workflow_id) == ("failure", "CI", "5001")
    assert (event.job, event.job_id) == ("test (3.11)", "62")
    assert event.repository.full_name == "acme/shop" and event.pr_number == 42
    assert event.branch == "feature/cart" and event.commit_sha.startswith("d6fde929")
    assert event.log is not None and event.log.ref is not None
    assert event.log.ref.name.startswith(f"{tenant}/")
    assert await read_log(integrations_bus.js, tenant, event.log) == log.decode()
    assert "/blob/62" in fake_github.calls and "/blob/61" not in fake_github.calls
    assert fake_github.refused == []
    assert metric_value(hooks_service, "revo_integrations_log_fetch_bytes_total") >= len(log)


async def test_a_missing_wrong_or_altered_signature_is_refused_before_anything_is_read(
    hooks_service, tenant, integrations_bus
):
    before = counted(hooks_service, "bad_signature")
    body = b'{"action": "completed", "check_run": {"id": 1}}'
    unsigned = {"X-GitHub-Event": "check_run", "X-GitHub-Delivery": str(uuid.uuid4())}
    wrong_secret = {**unsigned, "X-Hub-Signature-256": sign(body, "not-the-secret")}
    altered = {**unsigned, "X-Hub-Signature-256": sign(body)}
    non_ascii = {**unsigned, "X-Hub-Signature-256": "sha256=" + "é" * 64}
    path = f"/hooks/github/{tenant}"

    for headers, sent in ((unsigned, body), (wrong_secret, body), (altered, body + b" "),
                          (non_ascii, body)):  # fmt: skip
        status, answer = await post(hooks_service, path, sent, headers)
        assert status == 401, answer
        assert answer["error"]["code"] == "unauthorized"
        assert answer["error"]["field"] == "X-Hub-Signature-256"
    assert counted(hooks_service, "bad_signature") == before + 4
    assert await events_on(integrations_bus.js, tenant, "github") == 0


async def test_a_redelivered_delivery_is_accepted_once(hooks_service, tenant, integrations_bus):
    delivery = str(uuid.uuid4())
    payload = check_run(7001)  # another CI's check run: its output is the log, no fetch
    first = await github_hook(hooks_service, tenant, "check_run", payload, delivery)
    again = await github_hook(hooks_service, tenant, "check_run", payload, delivery)

    assert first[0] == 202 and first[1]["status"] == "accepted"
    assert again == (200, {"status": "duplicate", "event_id": first[1]["event_id"]})
    event, _ = await wait_for_event(integrations_bus.js, tenant, "github")
    assert event.job == "build" and event.workflow == "Circleci"
    assert event.log is not None and "2 tests failed" in event.log.text
    await asyncio.sleep(0.5)
    assert await events_on(integrations_bus.js, tenant, "github") == 1


async def test_the_same_delivery_sent_many_times_at_once_is_accepted_once(
    hooks_service, tenant, integrations_bus
):
    """Concurrent copies land in one batch of the group commit: the first one wins."""
    delivery = str(uuid.uuid4())
    answers = await asyncio.gather(
        *(
            github_hook(hooks_service, tenant, "check_run", check_run(7002), delivery)
            for _ in range(6)
        )
    )
    statuses = sorted(status for status, _ in answers)
    assert statuses == [200, 200, 200, 200, 200, 202], answers
    await wait_for_event(integrations_bus.js, tenant, "github")
    await asyncio.sleep(0.5)
    assert await events_on(integrations_bus.js, tenant, "github") == 1


async def test_ping_is_answered_and_other_events_and_actions_are_204_and_counted(
    hooks_service, tenant, integrations_bus
):
    before = counted(hooks_service, "ignored")
    assert await github_hook(hooks_service, tenant, "ping", {"zen": "Keep it simple."}) == (
        200,
        {"status": "pong"},
    )
    push = await github_hook(hooks_service, tenant, "push", {"ref": "refs/heads/main"})
    queued = await github_hook(
        hooks_service, tenant, "workflow_run", workflow_run(5002, None, "requested")
    )
    passed = await github_hook(
        hooks_service, tenant, "workflow_job", workflow_job(9, 5002, "success")
    )
    assert [push[0], queued[0], passed[0]] == [204, 204, 204]
    assert counted(hooks_service, "ignored") == before + 3
    assert await events_on(integrations_bus.js, tenant, "github") == 0


async def test_an_unknown_tenant_or_one_without_github_is_404(hooks_service, pg):
    await ConfigStore(pg, SecretBox(INTEGRATIONS_SECRET_KEY)).put(
        "gh-slack-only", SlackIntegration(webhook_url="https://hooks.slack.example/x")
    )
    for tenant in ("gh-nobody-here", "gh-slack-only", "no.such.tenant"):
        status, answer = await github_hook(hooks_service, tenant, "ping", {})
        assert status == 404 and answer["error"]["code"] == "not_found", answer


async def test_a_body_over_the_limit_is_413_whether_announced_or_streamed(hooks_service, tenant):
    url = f"http://127.0.0.1:{hooks_service.http_port}/hooks/github/{tenant}"
    big = b"x" * (MAX_BODY + 1)

    async def chunks():
        for start in range(0, len(big), 64 * 1024):
            yield big[start : start + 64 * 1024]

    async with aiohttp.ClientSession() as session:
        for data in (big, chunks()):  # Content-Length, then chunked without one
            async with session.post(url, data=data, headers={"X-GitHub-Event": "ping"}) as r:
                assert r.status == 413
                assert (await r.json())["error"]["field"] == "body"
    assert counted(hooks_service, "too_large") >= 2


async def test_malformed_payloads_are_400_naming_the_field(hooks_service, tenant):
    async def send(body: bytes, event: str = "workflow_run") -> tuple[int, dict]:
        headers = {
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": str(uuid.uuid4()),
            "X-Hub-Signature-256": sign(body),
        }
        return await post(hooks_service, f"/hooks/github/{tenant}", body, headers)

    no_sha = workflow_run(5003)
    del no_sha["workflow_run"]["head_sha"]
    bad_id = workflow_job(1, 5003)
    bad_id["workflow_job"]["id"] = "sixty-two"
    cases = [
        (b'{"action": "completed", "workflow_run": ', "body"),
        (json.dumps(no_sha).encode(), "workflow_run.head_sha"),
        (b'{"action": "completed", "x": "\xff"}', "body"),  # not UTF-8
        (b'["completed"]', "body"),  # JSON, but not an object
    ]
    for body, field in cases:
        status, answer = await send(body)
        assert (status, answer["error"]["code"], answer["error"]["field"]) == (
            400,
            "invalid_request",
            field,
        ), answer
    status, answer = await send(json.dumps(bad_id).encode(), "workflow_job")
    assert (status, answer["error"]["field"]) == (400, "workflow_job.id")
    body = json.dumps(check_run(1)).encode()
    headers = {"X-GitHub-Event": "check_run", "X-Hub-Signature-256": sign(body)}
    status, answer = await post(hooks_service, f"/hooks/github/{tenant}", body, headers)
    assert (status, answer["error"]["field"]) == (400, "X-GitHub-Delivery")


async def test_a_log_that_is_not_utf8_is_stored_with_replacement_characters(
    hooks_service, tenant, fake_github, integrations_bus
):
    fake_github.logs["81"] = b"compiling\n\xff\xfe\xfa broken bytes\nerror: linker failed\n"
    status, _ = await github_hook(hooks_service, tenant, "workflow_job", workflow_job(81, 5004))
    assert status == 202
    event, _ = await wait_for_event(integrations_bus.js, tenant, "github")
    assert (event.job, event.job_id, event.run_attempt) == ("test (3.11)", "81", 2)
    text = await read_log(integrations_bus.js, tenant, event.log)
    assert text == "compiling\n\ufffd\ufffd\ufffd broken bytes\nerror: linker failed\n"


async def test_an_actions_check_run_fetches_the_job_log_by_its_id(
    hooks_service, tenant, fake_github, integrations_bus
):
    fake_github.logs["7100"] = b"Run make test\nFAIL\n"
    payload = check_run(7100, app_slug="github-actions", conclusion="timed_out")
    assert (await github_hook(hooks_service, tenant, "check_run", payload))[0] == 202
    event, _ = await wait_for_event(integrations_bus.js, tenant, "github")
    assert event.status == "timed_out" and event.log.text == "Run make test\nFAIL\n"


async def test_a_log_github_no_longer_has_still_publishes_the_event(
    hooks_service, tenant, fake_github, integrations_bus
):
    """Logs expire at GitHub (404): the event goes out without one, nothing is lost."""
    status, _ = await github_hook(hooks_service, tenant, "workflow_job", workflow_job(404, 5005))
    assert status == 202
    event, _ = await wait_for_event(integrations_bus.js, tenant, "github")
    assert event.job_id == "404" and event.log is None


async def test_the_webhook_trace_goes_on_into_the_event_and_the_log_fetch(
    hooks_service, tenant, fake_github, integrations_bus, otlp_receiver
):
    fake_github.logs["91"] = b"boom\n"
    with trace.get_tracer("test").start_as_current_span("github delivery") as span:
        trace_id = format(span.get_span_context().trace_id, "032x")
        traced = inject()
    status, _ = await github_hook(
        hooks_service, tenant, "workflow_job", workflow_job(91, 5006), extra=traced
    )
    assert status == 202
    _, headers = await wait_for_event(integrations_bus.js, tenant, "github")
    assert headers["traceparent"].split("-")[1] == trace_id

    def spans():
        server = otlp_receiver.wait_for(trace_id, "POST /hooks/github/{tenant}")
        fetch = otlp_receiver.wait_for(
            trace_id, "GET /repos/{owner}/{repo}/actions/jobs/{job_id}/logs"
        )
        publish = otlp_receiver.wait_for(trace_id, f"ci.events.{tenant}.github publish")
        return server, fetch, publish

    server, fetch, publish = await asyncio.to_thread(spans)
    assert server.service == fetch.service == publish.service == "integrations"
    assert fetch.attributes["http.response.status_code"] == 302


async def test_an_event_published_before_the_answer_carries_the_webhook_trace_too(
    hooks_service, tenant, integrations_bus, otlp_receiver
):
    with trace.get_tracer("test").start_as_current_span("check delivery") as span:
        trace_id = format(span.get_span_context().trace_id, "032x")
        traced = inject()
    status, _ = await github_hook(hooks_service, tenant, "check_run", check_run(7003), extra=traced)
    assert status == 202
    _, headers = await wait_for_event(integrations_bus.js, tenant, "github")
    server = await asyncio.to_thread(
        otlp_receiver.wait_for, trace_id, "POST /hooks/github/{tenant}"
    )
    # The consumers' parent is the webhook's own server span.
    assert headers["traceparent"].split("-")[1:3] == [trace_id, server.span_id]
