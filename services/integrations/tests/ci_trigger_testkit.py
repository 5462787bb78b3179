"""What the CI trigger tests share: CI events to publish, the runs they submitted (read from
the RUNS and RUN_EVENTS streams with an operator's connection), and a wait until the
trigger has settled every event published so far (its consumer's ack floor)."""

from __future__ import annotations

import asyncio
import time
import uuid

import msgspec
from nats.js.errors import NotFoundError

from revo_contracts import subjects
from revo_contracts.ci import CiEvent, CiRepository
from revo_contracts.integrations import CiPolicy, Done, PolicyPut
from revo_contracts.runs import RunSubmit
from revo_contracts.streams import CI_EVENTS, RUN_EVENTS, RUNS
from revo_core.bus import Bus
from revo_core.jetstream import ensure_streams
from revo_integrations.ci_trigger import CONSUMER

_submit = msgspec.json.Decoder(RunSubmit)


def new_tenant(prefix: str = "ci") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def ci_event(tenant: str, **fields) -> CiEvent:
    """A failing GitHub job; `fields` override any part."""
    defaults = {
        "event_id": f"ev-{uuid.uuid4().hex}",
        "tenant": tenant,
        "provider": "github",
        "status": "failure",
        "repository": CiRepository(full_name="acme/api", url="https://github.com/acme/api"),
        "commit_sha": "0a1b2c3d4e5f60718293a4b5c6d7e8f901234567",
        "branch": "main",
        "workflow": "CI",
        "workflow_id": "101",
        "job": "test (3.12)",
        "job_id": "9001",
        "job_url": "https://github.com/acme/api/actions/runs/101/job/9001",
        "received_at": time.time(),
    }
    return CiEvent(**{**defaults, **fields})


async def prepare_runs_streams(bus: Bus) -> None:
    """The agent-runner makes RUNS and RUN_EVENTS; these tests run none, so they make them."""
    await ensure_streams(bus.js, (RUNS, RUN_EVENTS))


async def set_policy(bus: Bus, tenant: str, **fields) -> None:
    policy = CiPolicy(**{"agent": "ci-scripted", **fields})
    await bus.request(
        subjects.INTEGRATIONS_POLICY_PUT, PolicyPut(tenant=tenant, policy=policy), Done
    )


async def publish(bus: Bus, event: CiEvent, subject: str | None = None) -> int:
    """Publish as a webhook would; the event's stream sequence."""
    subject = subject or subjects.ci_events(event.tenant, event.provider)
    ack = await bus.js_publish(subject, event, msg_id=event.event_id)
    return ack.seq


async def publish_raw(bus: Bus, subject: str, data: bytes) -> int:
    ack = await bus.js.publish(subject, data)
    return ack.seq


async def wait_settled(bus: Bus, seq: int, timeout: float = 30.0) -> None:
    """Until the trigger has acked every CI event up to stream sequence `seq`."""
    end = time.monotonic() + timeout
    while True:
        info = await bus.js.consumer_info(CI_EVENTS.name, CONSUMER)
        if info.ack_floor.stream_seq >= seq:
            return
        if time.monotonic() > end:
            raise AssertionError(f"CI events up to {seq} not settled: {info.ack_floor}")
        await asyncio.sleep(0.05)


async def submitted(bus: Bus, tenant: str) -> list[RunSubmit]:
    """Every run submitted to RUNS for the tenant, oldest first (nothing consumes them here)."""
    return [
        _submit.decode(msg.data)
        for msg in await stream_messages(bus, RUNS.name, subjects.runs_submit(tenant))
    ]


async def stream_messages(bus: Bus, stream: str, subject: str) -> list:
    found, seq = [], 1
    while True:
        try:
            msg = await bus.js.get_msg(stream, seq=seq, subject=subject, next=True)
        except NotFoundError:
            return found
        found.append(msg)
        seq = msg.seq + 1


async def wait_runs(bus: Bus, tenant: str, count: int, timeout: float = 30.0) -> list[RunSubmit]:
    end = time.monotonic() + timeout
    while True:
        runs = await submitted(bus, tenant)
        if len(runs) >= count or time.monotonic() > end:
            return runs
        await asyncio.sleep(0.05)
