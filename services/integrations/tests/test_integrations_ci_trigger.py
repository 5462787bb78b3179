"""The CI trigger: a failing CI event submits one run of the tenant's CI agent, and only one
per failure and window; what the policy filters, and what is refused, submits none and
leaves the consumer alive. Runs are read back from the RUNS and RUN_EVENTS streams (no
agent-runner takes them here)."""

from __future__ import annotations

import asyncio

import msgspec
import pytest
from ci_trigger_testkit import (
    ci_event,
    new_tenant,
    prepare_runs_streams,
    publish,
    publish_raw,
    set_policy,
    stream_messages,
    submitted,
    wait_runs,
    wait_settled,
)

from revo_contracts import subjects
from revo_contracts.ci import CiEvent, CiLog, CiLogRef
from revo_contracts.integrations import CiPolicy, PolicyGet
from revo_contracts.streams import CI_EVENTS, RUN_EVENTS
from revo_core import tracing
from revo_core.testing.metrics import metric_value
from revo_integrations.ci_trigger import ci_run_id

CI_RUNS_METRIC = "revo_integrations_ci_runs_total"


@pytest.fixture
async def trigger_bus(integrations, integrations_bus):
    await prepare_runs_streams(integrations_bus)
    return integrations_bus


async def test_a_failing_event_submits_one_run_carrying_the_event_in_its_trace(
    trigger_bus, otlp_receiver
):
    tenant = new_tenant()
    await set_policy(trigger_bus, tenant)
    log = CiLog(ref=CiLogRef(name=f"{tenant}/ev.log.gz", size=123_456, stored_size=9_000))
    event = ci_event(tenant, log=log, pr_number=42)
    with tracing.internal_span("ci publisher"):
        trace_id, _ = tracing.current_ids()
        seq = await publish(trigger_bus, event)
    await wait_settled(trigger_bus, seq)

    [run] = await wait_runs(trigger_bus, tenant, 1)
    assert run.run_id == ci_run_id(tenant, event.failure_signature(), event.event_id)
    assert (run.tenant, run.agent, run.user, run.owner) == (
        tenant, "ci-scripted", "ci:github", "ci:github",
    )  # fmt: skip
    assert "acme/api" in run.task and event.commit_sha in run.task
    assert "CI / test (3.12)" in run.task and "branch main" in run.task and "PR #42" in run.task
    assert f"object '{tenant}/ev.log.gz' of the CI_LOGS object store" in run.task
    carried = msgspec.json.decode(run.task.rsplit("\n", 1)[1], type=CiEvent)
    assert carried == event
    # The run's queued event went to its log, and the submission continued the event's trace.
    [queued] = await stream_messages(
        trigger_bus, RUN_EVENTS.name, subjects.runs_events(tenant, run.run_id)
    )
    assert b'"queued"' in queued.data
    [stored] = await stream_messages(trigger_bus, "RUNS", subjects.runs_submit(tenant))
    assert stored.headers["traceparent"].split("-")[1] == trace_id
    # In the exported spans: publish (here) -> process (the trigger) -> the run's publish.
    [published] = await stream_messages(
        trigger_bus, CI_EVENTS.name, subjects.ci_events(tenant, "github")
    )
    subject = subjects.ci_events(tenant, "github")
    process = await asyncio.to_thread(otlp_receiver.wait_for, trace_id, f"{subject} process")
    assert process.service == "integrations"
    assert process.parent_span_id == published.headers["traceparent"].split("-")[2]
    submit_name = f"{subjects.runs_submit(tenant)} publish"
    submit = await asyncio.to_thread(otlp_receiver.wait_for, trace_id, submit_name)
    assert (submit.service, submit.parent_span_id) == ("integrations", process.span_id)


async def test_the_same_failure_starts_one_run_per_window(trigger_bus):
    tenant = new_tenant()
    await set_policy(trigger_bus, tenant, window_s=3.0)
    first = ci_event(tenant)
    await wait_settled(trigger_bus, await publish(trigger_bus, first))
    assert len(await wait_runs(trigger_bus, tenant, 1)) == 1

    # The same failure reported again (a check_run beside the workflow_run, a re-run's
    # webhook) within the window: nothing more; a redelivery of the first: nothing either.
    again = ci_event(tenant, run_attempt=2, received_at=first.received_at + 1)
    await wait_settled(trigger_bus, await publish(trigger_bus, again))
    # (published without its Nats-Msg-Id: the stream keeps it, the trigger sees it again)
    redelivered = await trigger_bus.js_publish(subjects.ci_events(tenant, "github"), first)
    await wait_settled(trigger_bus, redelivered.seq)
    assert len(await submitted(trigger_bus, tenant)) == 1
    # Another job of the same commit is another failure.
    other_job = ci_event(tenant, job="lint")
    await wait_settled(trigger_bus, await publish(trigger_bus, other_job))
    assert len(await submitted(trigger_bus, tenant)) == 2

    await asyncio.sleep(3.2)  # past the window: the same failure is investigated again
    later = ci_event(tenant)
    await wait_settled(trigger_bus, await publish(trigger_bus, later))
    runs = await submitted(trigger_bus, tenant)
    assert len(runs) == 3
    assert runs[2].run_id == ci_run_id(tenant, later.failure_signature(), later.event_id)


async def test_what_did_not_fail_or_the_policy_leaves_out_starts_nothing(trigger_bus):
    tenant = new_tenant()
    await set_policy(trigger_bus, tenant, repositories=["acme/*"], branches=["main", "release/*"])
    ignored = [
        ci_event(tenant, status="success"),
        ci_event(tenant, status="cancelled"),
        ci_event(tenant, status="running"),
        ci_event(tenant, branch="feature/x"),
        ci_event(tenant, branch="", ref="refs/heads/Main"),  # globs are case-sensitive
        ci_event(tenant, repository=msgspec.structs.replace(
            ci_event(tenant).repository, full_name="other/api"
        )),
    ]  # fmt: skip
    for event in ignored:
        await publish(trigger_bus, event)
    taken = [
        ci_event(tenant, branch="release/1.2", job="a"),
        ci_event(tenant, branch="", ref="refs/heads/main", job="b", status="timed_out"),
    ]
    last = 0
    for event in taken:
        last = await publish(trigger_bus, event)
    await wait_settled(trigger_bus, last)

    runs = await submitted(trigger_bus, tenant)
    expected = {ci_run_id(tenant, e.failure_signature(), e.event_id) for e in taken}
    assert {run.run_id for run in runs} == expected and len(runs) == 2


async def test_a_disabled_policy_starts_nothing_and_the_default_policy_is_answered(
    trigger_bus,
):
    tenant = new_tenant()
    default = await trigger_bus.request(
        subjects.INTEGRATIONS_POLICY_GET, PolicyGet(tenant=tenant), CiPolicy
    )
    assert default == CiPolicy() and default.agent == "ci-debugger"

    await set_policy(trigger_bus, tenant, enabled=False)
    await wait_settled(trigger_bus, await publish(trigger_bus, ci_event(tenant)))
    assert await submitted(trigger_bus, tenant) == []

    await set_policy(trigger_bus, tenant, enabled=True)
    await wait_settled(trigger_bus, await publish(trigger_bus, ci_event(tenant)))
    assert len(await submitted(trigger_bus, tenant)) == 1


async def test_forged_and_garbage_events_are_refused_and_the_trigger_goes_on(
    integrations, trigger_bus
):
    victim, forger = new_tenant("victim"), new_tenant("forger")
    await set_policy(trigger_bus, victim)
    await set_policy(trigger_bus, forger)
    refused_before = metric_value(integrations, CI_RUNS_METRIC, outcome="refused")

    # The forger's subject names the forger; the event names the victim (and the reverse).
    await publish(trigger_bus, ci_event(victim), subject=subjects.ci_events(forger, "github"))
    await publish(trigger_bus, ci_event(forger), subject=subjects.ci_events(victim, "github"))
    for garbage in (b"\xff\xfe not json", b'{"event_id": "x"}', b"[" * 100_000, b""):
        await publish_raw(trigger_bus, subjects.ci_events(victim, "github"), garbage)
    # A whole event, on a subject of another shape than ci.events.<tenant>.<provider>.
    odd = msgspec.json.encode(ci_event(victim))
    await publish_raw(trigger_bus, f"ci.events.{victim}.github.extra", odd)
    # A failure Postgres cannot keep (a NUL in its job's name): refused, not retried for ever.
    await publish(trigger_bus, ci_event(victim, job="nul\x00job"))
    alive = ci_event(victim, job="after the garbage")
    await wait_settled(trigger_bus, await publish(trigger_bus, alive))

    [run] = await submitted(trigger_bus, victim)
    assert run.run_id == ci_run_id(victim, alive.failure_signature(), alive.event_id)
    assert await submitted(trigger_bus, forger) == []
    refused = metric_value(integrations, CI_RUNS_METRIC, outcome="refused")
    assert refused - refused_before == 8
