"""Notifications out, end to end: a real integrations service on a NATS of its own, the
tenants' integrations in the real Postgres (ConfigStore), and each destination a real HTTP
server in the test that checks what it receives (notify_fakes)."""

from __future__ import annotations

import asyncio
import itertools
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator

import aiohttp
import pytest
from notify_fakes import FakeGithub, FakeJira, FakeSlack, Started, WebhookReceiver
from opentelemetry import trace

from revo_contracts import subjects
from revo_contracts.ci import CiRepository
from revo_contracts.integrations import (
    GithubIntegration,
    JiraIntegration,
    SlackIntegration,
    WebhookIntegration,
)
from revo_contracts.notify import Annotation, Link, Notification
from revo_core.bus import Bus
from revo_core.embedded.nats_server import NatsServer
from revo_core.embedded.service_process import ServiceProcess
from revo_core.testing.fixtures import INTEGRATIONS_SECRET_KEY, nats_server_of, operator_bus
from revo_core.testing.metrics import metric_value
from revo_integrations.config_store import ConfigStore
from revo_integrations.secret_box import SecretBox

# Retries in tens of milliseconds, a crashed delivery back after 3 s.
NOTIFY_TEST_SETTINGS = {
    "REVO_INTEGRATIONS_NOTIFY_BACKOFF_BASE_S": "0.05",
    "REVO_INTEGRATIONS_NOTIFY_BACKOFF_MAX_S": "0.3",
    "REVO_INTEGRATIONS_NOTIFY_ACK_WAIT_S": "3",
}
WEBHOOK_SECRET = "whsec_" + "dGVzdC1zZWNyZXQtb2YtdGhlLXdlYmhvb2stcmVjZWl2ZXI="
GITHUB_TOKEN = "ghp_notifytoken"
SLACK_TOKEN = "xoxb-notify"
NOTIFIED = "revo_integrations_notifications_total"


@pytest.fixture(scope="module")
def notify_nats(revo_tmp, bus_authority) -> Iterator[NatsServer]:
    server = nats_server_of(revo_tmp / "nats-notify", bus_authority)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def notify_service(notify_nats, integrations_factory) -> ServiceProcess:
    return integrations_factory.start(
        notify_nats.url, "integrations-notify", **NOTIFY_TEST_SETTINGS
    )


@pytest.fixture
async def notify_bus(notify_nats) -> AsyncIterator[Bus]:
    bus = await operator_bus(notify_nats, "pytest-notify")
    yield bus
    await bus.close()


@pytest.fixture
def configs(pg) -> ConfigStore:
    return ConfigStore(pg, SecretBox(INTEGRATIONS_SECRET_KEY))


@pytest.fixture
async def fakes() -> AsyncIterator[Started]:
    started = Started()
    yield started
    await started.stop()


def tenant() -> str:
    return f"notify-{uuid.uuid4().hex[:8]}"


def notification(tenant: str, channel: str, **fields) -> Notification:
    defaults = {
        "notification_id": f"n-{uuid.uuid4().hex}",
        "tenant": tenant,
        "channel": channel,
        "title": "CI failed: test_checkout",
        "summary": "The payment mock returns None since commit abc.",
        "signature": "acme/shop|ci|tests|abc123",
        "repository": CiRepository(full_name="acme/shop", url="https://github.com/acme/shop"),
        "commit_sha": "abc123",
        "failing_test": "tests/test_checkout.py::test_pay",
        "root_cause": "PaymentClient.charge returns None when the mock is not primed",
        "links": [
            Link(
                title="payments.py:42",
                url="https://github.com/acme/shop/blob/abc123/payments.py#L42",
            ),
            Link(title="revo run", url="https://revo.example/runs/r1"),
        ],
        "annotations": [
            Annotation(
                path="payments.py", line=42, title="returns None", message="charge() returns None"
            )
        ],
        "run_id": "r1",
        "created_at": time.time(),
    }
    return Notification(**{**defaults, **fields})


async def publish(bus: Bus, note: Notification) -> None:
    await bus.js_publish(
        subjects.notify(note.channel, note.tenant), note, msg_id=note.notification_id
    )


async def eventually(check: Callable[[], bool], timeout: float = 20.0, what: str = "") -> None:
    end = time.monotonic() + timeout
    while not check():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what or check}")
        await asyncio.sleep(0.05)


async def revo(nats: NatsServer, *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "revo_cli.main",
        "--nats-url",
        nats.url,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode or 0, out.decode(), err.decode()


# -- each channel's payload ---------------------------------------------------------------


async def test_a_webhook_notification_is_signed_so_a_standard_webhooks_verifier_accepts_it(
    notify_service, notify_bus, configs, fakes, otlp_receiver
):
    t = tenant()
    receiver = await fakes.start(WebhookReceiver(WEBHOOK_SECRET))
    await configs.put(t, WebhookIntegration(url=receiver.hook_url, secret=WEBHOOK_SECRET))
    note = notification(t, "webhook")
    with trace.get_tracer("test").start_as_current_span("publish a notification") as span:
        await publish(notify_bus, note)
    trace_id = format(span.get_span_context().trace_id, "032x")

    await eventually(lambda: note.notification_id in receiver.delivered, what="delivery")
    assert receiver.problems == []
    [seen] = receiver.seen
    assert seen.headers["webhook-id"] == note.notification_id
    payload = receiver.delivered[note.notification_id]
    assert payload["type"] == "revo.notification"
    assert payload["data"]["root_cause"] == note.root_cause
    assert payload["data"]["annotations"][0] == {
        "path": "payments.py",
        "line": 42,
        "title": "returns None",
        "message": "charge() returns None",
    }
    # The destination's HTTP call is a client span in the publisher's trace.
    http_span = otlp_receiver.wait_for(trace_id, "POST {webhook url}")
    assert http_span.service == "integrations"
    assert http_span.attributes["http.response.status_code"] == 200
    process_span = otlp_receiver.wait_for(trace_id, f"notify.webhook.{t} process")
    assert http_span.parent_span_id == process_span.span_id


async def test_github_gets_a_check_run_with_annotations_and_a_re_run_updates_the_same_comment(
    notify_service, notify_bus, configs, fakes
):
    t = tenant()
    github = await fakes.start(FakeGithub(GITHUB_TOKEN))
    await configs.put(t, GithubIntegration(token=GITHUB_TOKEN, api_url=github.url))
    first = notification(t, "github", pr_number=7)
    await publish(notify_bus, first)
    await eventually(lambda: len(github.comments) == 1 and len(github.check_runs) == 1)

    [run] = github.check_runs
    assert run["head_sha"] == "abc123" and run["conclusion"] == "failure"
    assert run["external_id"] == first.notification_id
    assert run["output"]["annotations"][0]["path"] == "payments.py"
    assert run["output"]["annotations"][0]["start_line"] == 42
    [(comment_id, comment)] = github.comments.items()
    assert comment["where"] == "#7" and "test_checkout.py::test_pay" in comment["body"]

    # The same failure again (a re-run: a new notification, the same signature).
    rerun = notification(t, "github", pr_number=7, title="CI failed again: test_checkout")
    await publish(notify_bus, rerun)
    await eventually(lambda: len(github.check_runs) == 2)
    await eventually(lambda: "failed again" in github.comments[comment_id]["body"])
    assert list(github.comments) == [comment_id]
    patches = [s for s in github.seen if s.method == "PATCH"]
    assert [p.path for p in patches] == [f"/repos/acme/shop/issues/comments/{comment_id}"]
    assert github.problems == []


async def test_github_posts_a_new_comment_when_the_one_to_update_was_deleted(
    notify_service, notify_bus, configs, fakes
):
    t = tenant()
    github = await fakes.start(FakeGithub(GITHUB_TOKEN))
    await configs.put(
        t, GithubIntegration(token=GITHUB_TOKEN, api_url=github.url, check_runs=False)
    )
    await publish(notify_bus, notification(t, "github", pr_number=3))
    await eventually(lambda: len(github.comments) == 1)
    github.comments.clear()  # someone deleted it
    await publish(notify_bus, notification(t, "github", pr_number=3, title="Again"))
    await eventually(lambda: len(github.comments) == 1)
    assert "Again" in next(iter(github.comments.values()))["body"]
    assert [s.method for s in github.seen] == ["POST", "PATCH", "POST"]


async def test_github_without_a_pr_comments_on_the_commit(
    notify_service, notify_bus, configs, fakes
):
    t = tenant()
    github = await fakes.start(FakeGithub(GITHUB_TOKEN))
    await configs.put(
        t, GithubIntegration(token=GITHUB_TOKEN, api_url=github.url, check_runs=False)
    )
    await publish(notify_bus, notification(t, "github"))
    await eventually(lambda: len(github.comments) == 1)
    assert next(iter(github.comments.values()))["where"] == "@abc123"
    assert github.check_runs == [] and github.problems == []


async def test_slack_chat_post_message_carries_block_kit_with_the_root_cause_and_its_link(
    notify_service, notify_bus, configs, fakes
):
    t = tenant()
    slack = await fakes.start(FakeSlack(SLACK_TOKEN))
    await configs.put(t, SlackIntegration(token=SLACK_TOKEN, channel="#ci", api_url=slack.api_url))
    note = notification(t, "slack")
    await publish(notify_bus, note)
    await eventually(lambda: len(slack.messages) == 1)

    [message] = slack.messages
    assert message["channel"] == "#ci"
    blocks = message["blocks"]
    assert blocks[0] == {"type": "header", "text": {"type": "plain_text", "text": note.title}}
    text = str(blocks)
    assert "`tests/test_checkout.py::test_pay`" in text
    assert "*Root cause:* PaymentClient.charge" in text
    assert "<https://github.com/acme/shop/blob/abc123/payments.py#L42|payments.py:42>" in text
    assert "<https://revo.example/runs/r1|revo run>" in text
    assert slack.problems == []


async def test_slack_incoming_webhook_gets_the_same_message(
    notify_service, notify_bus, configs, fakes
):
    t = tenant()
    slack = await fakes.start(FakeSlack(SLACK_TOKEN))
    await configs.put(t, SlackIntegration(webhook_url=slack.webhook_url))
    await publish(notify_bus, notification(t, "slack"))
    await eventually(lambda: len(slack.messages) == 1)
    assert slack.messages[0]["blocks"][0]["type"] == "header" and slack.problems == []


async def test_slack_429_waits_the_retry_after_it_was_told_then_delivers_once(
    notify_service, notify_bus, configs, fakes
):
    t = tenant()
    slack = await fakes.start(FakeSlack(SLACK_TOKEN))
    slack.fail(1, status=429, **{"Retry-After": "2"})
    await configs.put(t, SlackIntegration(token=SLACK_TOKEN, channel="#ci", api_url=slack.api_url))
    await publish(notify_bus, notification(t, "slack"))
    await eventually(lambda: len(slack.messages) == 1)
    first, second = slack.seen
    assert second.at - first.at >= 2.0
    await asyncio.sleep(0.5)
    assert len(slack.seen) == 2 and len(slack.messages) == 1


async def test_jira_opens_an_issue_then_comments_on_it_for_the_same_failure(
    notify_service, notify_bus, configs, fakes
):
    t = tenant()
    jira = await fakes.start(FakeJira("bot@acme.dev", "jira-token", "OPS"))
    await configs.put(
        t,
        JiraIntegration(site=jira.url, email="bot@acme.dev", api_token="jira-token", project="OPS"),
    )
    await publish(notify_bus, notification(t, "jira"))
    await eventually(lambda: len(jira.issues) == 1)
    [(key, issue)] = jira.issues.items()
    fields = issue["fields"]
    assert (
        fields["issuetype"] == {"name": "Bug"} and fields["summary"] == "CI failed: test_checkout"
    )
    assert "revo" in fields["labels"]
    description = str(fields["description"])
    assert (
        "PaymentClient.charge" in description and "'href': 'https://github.com/acme" in description
    )

    await publish(notify_bus, notification(t, "jira", title="Failed again"))
    await eventually(lambda: len(jira.issues[key]["comments"]) == 1)
    assert list(jira.issues) == [key]
    # Another failure is another issue.
    await publish(notify_bus, notification(t, "jira", signature="acme/shop|ci|lint|abc123"))
    await eventually(lambda: len(jira.issues) == 2)
    assert jira.problems == []


async def test_a_delivered_notification_sent_again_is_not_posted_again(
    notify_service, notify_bus, configs, fakes
):
    t = tenant()
    slack = await fakes.start(FakeSlack(SLACK_TOKEN))
    await configs.put(t, SlackIntegration(token=SLACK_TOKEN, channel="#ci", api_url=slack.api_url))
    note = notification(t, "slack")
    await publish(notify_bus, note)
    await eventually(lambda: len(slack.messages) == 1)
    duplicates = metric_value(notify_service, NOTIFIED, channel="slack", outcome="duplicate")
    # The publisher sends it again after NOTIFY's duplicate window (a new Nats-Msg-Id).
    await notify_bus.js_publish(
        subjects.notify("slack", t), note, msg_id=f"{note.notification_id}-again"
    )
    await eventually(
        lambda: (
            metric_value(notify_service, NOTIFIED, channel="slack", outcome="duplicate")
            == duplicates + 1
        ),
        what="the repeat counted as a duplicate",
    )
    assert len(slack.seen) == 1


# -- retries, dead letters, redrive --------------------------------------------------------


async def test_a_destination_failing_five_times_then_recovering_gets_it_once(
    notify_service, notify_bus, configs, fakes
):
    t = tenant()
    receiver = await fakes.start(WebhookReceiver(WEBHOOK_SECRET))
    receiver.fail(5, status=503)
    await configs.put(t, WebhookIntegration(url=receiver.hook_url, secret=WEBHOOK_SECRET))
    note = notification(t, "webhook")
    await publish(notify_bus, note)
    await eventually(lambda: note.notification_id in receiver.delivered)
    await asyncio.sleep(0.5)
    assert len(receiver.seen) == 6
    assert {s.headers["webhook-id"] for s in receiver.seen} == {note.notification_id}
    assert list(receiver.delivered) == [note.notification_id]


async def test_failing_forever_goes_to_dead_letters_and_a_redrive_delivers_it(
    notify_service, notify_nats, notify_bus, configs, fakes
):
    t = tenant()
    receiver = await fakes.start(WebhookReceiver(WEBHOOK_SECRET))
    receiver.fail(None, status=500)
    await configs.put(t, WebhookIntegration(url=receiver.hook_url, secret=WEBHOOK_SECRET))
    note = notification(t, "webhook", title="Doomed for now")
    await publish(notify_bus, note)

    async def listed() -> str:
        code, out, err = await revo(notify_nats, "notify", "dead", "--tenant", t)
        assert code == 0, err
        return out

    end = time.monotonic() + 30
    while note.notification_id not in (out := await listed()):
        assert time.monotonic() < end, "no dead letter"
        await asyncio.sleep(0.3)
    assert "Doomed for now" in out and "HTTP 500" in out and " 8 " in out
    assert len(receiver.seen) == 8 and receiver.delivered == {}

    receiver.fail(0)
    code, out, err = await revo(notify_nats, "notify", "redrive", note.notification_id)
    assert code == 0 and "redriven: 1" in out, err
    await eventually(lambda: note.notification_id in receiver.delivered)
    assert "no dead letters." in await listed()
    code, _, err = await revo(notify_nats, "notify", "redrive", note.notification_id)
    assert code == 1 and "no dead letter" in err


async def test_no_integration_is_a_dead_letter_at_once_and_redrive_all_sends_it_later(
    notify_service, notify_nats, notify_bus, configs, fakes
):
    t = tenant()
    note = notification(t, "webhook")
    await publish(notify_bus, note)
    end = time.monotonic() + 15
    while note.notification_id not in (await revo(notify_nats, "notify", "dead", "--tenant", t))[1]:
        assert time.monotonic() < end
        await asyncio.sleep(0.3)

    receiver = await fakes.start(WebhookReceiver(WEBHOOK_SECRET))
    await configs.put(t, WebhookIntegration(url=receiver.hook_url, secret=WEBHOOK_SECRET))
    code, out, err = await revo(notify_nats, "notify", "redrive", "--all", "--tenant", t)
    assert code == 0 and "redriven: 1" in out, err
    await eventually(lambda: note.notification_id in receiver.delivered)


async def test_an_answer_the_channel_cannot_use_is_retried_then_dead_lettered_not_looped(
    notify_service, notify_nats, notify_bus, configs, fakes
):
    t = tenant()
    github = await fakes.start(FakeGithub(GITHUB_TOKEN))
    github.check_run_without_id = True
    await configs.put(t, GithubIntegration(token=GITHUB_TOKEN, api_url=github.url, comments=False))
    note = notification(t, "github")
    await publish(notify_bus, note)
    end = time.monotonic() + 30
    while note.notification_id not in (
        out := (await revo(notify_nats, "notify", "dead", "--tenant", t))[1]
    ):
        assert time.monotonic() < end, "no dead letter"
        await asyncio.sleep(0.3)
    assert "unexpected: KeyError" in out  # the retries' lookups of the check run it made
    assert len(github.check_runs) == 1  # each retry looks for it first: never made twice


# -- bad input ------------------------------------------------------------------------------


async def test_malformed_and_tenant_mismatched_notifications_are_refused_and_the_rest_flows(
    notify_service, notify_bus, configs, fakes
):
    t, other = tenant(), tenant()
    receiver = await fakes.start(WebhookReceiver(WEBHOOK_SECRET))
    for who in (t, other):
        await configs.put(who, WebhookIntegration(url=receiver.hook_url, secret=WEBHOOK_SECRET))
    refused_before = metric_value(notify_service, NOTIFIED, channel="webhook", outcome="refused")

    await notify_bus.js.publish(subjects.notify("webhook", t), b"{not json")
    await notify_bus.js.publish(subjects.notify("webhook", t), b'{"tenant": "x"}')
    forged = notification(other, "webhook")  # another tenant's, on this tenant's subject
    await notify_bus.js_publish(
        subjects.notify("webhook", t), forged, msg_id=forged.notification_id
    )
    wrong_channel = notification(t, "slack")
    await notify_bus.js_publish(
        subjects.notify("webhook", t), wrong_channel, msg_id=wrong_channel.notification_id
    )
    honest = notification(t, "webhook")
    await publish(notify_bus, honest)

    await eventually(lambda: honest.notification_id in receiver.delivered)
    await eventually(
        lambda: (
            metric_value(notify_service, NOTIFIED, channel="webhook", outcome="refused")
            == refused_before + 4
        ),
        what="4 refusals counted",
    )
    assert list(receiver.delivered) == [honest.notification_id]
    # The consumer's lag is in /metrics (consumer_lag.py), per channel.
    async with aiohttp.ClientSession() as session, session.get(notify_service.metrics_url) as r:
        exposed = await r.text()
    assert 'revo_integrations_consumer_pending{consumer="notify-webhook",state="pending"}' in (
        exposed
    )


# -- revo integrations test ------------------------------------------------------------------


async def test_integrations_test_sends_a_real_test_notification_and_prints_the_answer(
    notify_service, notify_nats, configs, fakes
):
    t = tenant()
    receiver = await fakes.start(WebhookReceiver(WEBHOOK_SECRET))
    await configs.put(t, WebhookIntegration(url=receiver.hook_url, secret=WEBHOOK_SECRET))
    code, out, err = await revo(notify_nats, "integrations", "test", "webhook", "--tenant", t)
    assert code == 0, err
    assert "delivered, status 200" in out
    [test_id] = receiver.delivered
    assert test_id.startswith("test-") and receiver.delivered[test_id]["type"] == "revo.test"

    github = await fakes.start(FakeGithub(GITHUB_TOKEN))
    await configs.put(t, GithubIntegration(token="ghp_wrong", api_url=github.url))
    code, out, _ = await revo(notify_nats, "integrations", "test", "github", "--tenant", t)
    assert code == 1 and "refused, status 401" in out and "Bad credentials" in out

    code, _, err = await revo(notify_nats, "integrations", "test", "jira", "--tenant", t)
    assert code == 1 and "no jira integration" in err

    slack = await fakes.start(FakeSlack(SLACK_TOKEN))
    await configs.put(t, SlackIntegration(token=SLACK_TOKEN, channel="#ops", api_url=slack.api_url))
    code, out, err = await revo(notify_nats, "integrations", "test", "slack", "--tenant", t)
    assert code == 0 and "slack" in out and "delivered, status 200" in out, err
    assert (
        slack.messages[0]["channel"] == "#ops" and "test notification" in slack.messages[0]["text"]
    )


async def test_slack_is_capped_at_about_one_message_a_second_per_channel(
    notify_service, notify_bus, configs, fakes
):
    t = tenant()
    slack = await fakes.start(FakeSlack(SLACK_TOKEN))
    await configs.put(t, SlackIntegration(token=SLACK_TOKEN, channel="#ci", api_url=slack.api_url))
    for _ in range(5):
        await publish(notify_bus, notification(t, "slack"))
    await eventually(lambda: len(slack.messages) == 5)
    arrivals = [seen.at for seen in slack.seen]
    # A burst of 3, then one a second.
    assert arrivals[4] - arrivals[0] >= 1.8
    assert all(b - a >= 0.8 for a, b in itertools.pairwise(arrivals[2:]))
