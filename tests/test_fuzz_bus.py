"""Hypothesis-generated messages to every NATS request/reply endpoint and stream consumer of
the platform (issue 14, "proven, not promised"): bad input gets a typed error (never
`internal`, never silence), and every consumer keeps consuming after it.

One world of real services on a nats-server of its own: cost-ledger, memory with an
embed-only inference, chat-gateway and agent-runner. The fuzzer speaks as the operator (it
may publish anything), so what is tested is each service's own handling of what arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nats.js.errors import BadRequestError

from revo_contracts import subjects
from revo_contracts.audit import AuditListRequest, AuditListResponse
from revo_contracts.ledger import ReportRequest
from revo_contracts.runs import RunSubmit
from revo_contracts.usage import UsageEvent
from revo_core import headers as h
from revo_core.audit import audit_event, record_audit
from revo_core.runs import RunFollower, event_type, is_terminal, new_run_id, submit_run
from revo_core.testing.fixtures import embed_only_inference, nats_server_of, operator_bus

REQUEST_TIMEOUT_S = 10.0
# Every request/reply endpoint, with a field name or two of its contract so that generated
# objects sometimes get past the first check.
ENDPOINTS = {
    subjects.INFERENCE_EMBED: ("texts", "model"),
    subjects.INFERENCE_MODELS: (),
    subjects.LEDGER_RESERVE: ("tenant", "request_id", "model", "estimated_micros"),
    subjects.LEDGER_SETTLE: ("tenant", "request_id", "actual_micros"),
    subjects.LEDGER_BUDGET: ("tenant", "action", "limit_micros", "period"),
    subjects.LEDGER_REPORT: ("tenant", "since", "until", "top_runs"),
    subjects.LEDGER_PRICES_RELOAD: (),
    subjects.MEMORY_STORE: ("scope", "memories", "tenant", "text"),
    subjects.MEMORY_RECALL: ("scope", "query", "top_k", "token_budget"),
    subjects.MEMORY_FORGET: ("scope", "ids", "filter"),
    subjects.MEMORY_HISTORY: ("scope", "memory_id"),
    subjects.RUNS_LIST: ("tenant", "status", "limit", "agent"),
    subjects.RUNS_GET: ("run_id", "tenant"),
    subjects.RUNS_AGENTS: (),
    subjects.GATEWAY_KEYS_CREATE: ("tenant", "role", "name"),
    subjects.GATEWAY_AUDIT_LIST: ("tenant", "since", "action", "limit"),
}
FIELD_NAMES = sorted({name for names in ENDPOINTS.values() for name in names})

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=40)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(FIELD_NAMES) | st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=12,
)
payloads = (
    json_values.map(lambda value: msgspec.json.encode(value))
    | st.binary(max_size=64)
    | st.sampled_from(
        [b"", b"{", b"null", b"[]", b'{"tenant": "a.b"}', b"[" * 20_000 + b"]" * 20_000]
    )
)


@pytest.fixture(scope="module")
def fuzz_world(
    revo_tmp: Path,
    bus_authority,
    ledger_factory,
    memory_factory,
    gateway_factory,
    runner_factory,
    otlp_receiver,
):
    server = nats_server_of(revo_tmp / "nats-fuzz", bus_authority)
    embedder = embed_only_inference(server.url, revo_tmp / "fuzz", otlp_receiver.endpoint)
    try:
        ledger_factory.start(server.url, "ledger-fuzz")
        memory_factory.start(server.url, "memory-fuzz")
        gateway_factory.start(server.url, "gateway-fuzz")
        runner_factory.start(server.url, "runner-fuzz")
        yield server
    finally:
        embedder.stop()
        server.stop()


@pytest.fixture
async def fuzz_bus(fuzz_world):
    bus = await operator_bus(fuzz_world, "fuzzer")
    yield bus
    await bus.close()


async def answer_to(bus, subject: str, payload: bytes):
    return await bus.nc.request(subject, payload, timeout=REQUEST_TIMEOUT_S)


@pytest.mark.parametrize("subject", list(ENDPOINTS))
@settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(payload=payloads)
async def test_every_endpoint_answers_bad_input_with_a_typed_error(fuzz_bus, subject, payload):
    reply = await answer_to(fuzz_bus, subject, payload)
    code = (reply.headers or {}).get(h.ERROR_CODE)
    assert code != "internal", (subject, payload[:200], reply.data[:300])


async def test_deeply_nested_json_is_invalid_request_on_every_endpoint(fuzz_bus):
    nested = b"[" * 20_000 + b"]" * 20_000
    for subject in ENDPOINTS:
        reply = await answer_to(fuzz_bus, subject, nested)
        assert (reply.headers or {}).get(h.ERROR_CODE) == "invalid_request", subject


# -- stream consumers: garbage first, then a good message that must still be consumed -------


def tenant() -> str:
    return f"fz{uuid.uuid4().hex[:8]}"


NESTED_OBJECT = b'{"x":' + b'{"a":' * 20_000 + b"1" + b"}" * 20_001
GARBAGE = (b"", b"{", b"[1,2]", b'{"tenant": 5}', b"[" * 20_000 + b"]" * 20_000, NESTED_OBJECT)


async def publish_garbage(bus, subject: str) -> None:
    for junk in GARBAGE:
        # A stream whose max_msg_size the junk passes refuses it: it never reaches a consumer.
        with contextlib.suppress(BadRequestError):
            await bus.js.publish(subject, junk, headers={h.MSG_ID: uuid.uuid4().hex})


async def settled(bus, stream: str, consumer: str) -> bool:
    """Whether the consumer holds nothing unacknowledged: no poison message redelivered
    forever."""

    async def nothing_pending() -> bool:
        info = await bus.js.consumer_info(stream, consumer)
        return info.num_ack_pending == 0 and info.num_pending == 0

    return await until(nothing_pending)


async def until(check, timeout: float = 20.0):
    end = time.monotonic() + timeout
    while True:
        result = await check()
        if result or time.monotonic() > end:
            return result
        await asyncio.sleep(0.2)


async def test_the_ledger_keeps_recording_usage_after_garbage(fuzz_bus):
    who = tenant()
    await publish_garbage(fuzz_bus, subjects.usage(who))
    event = UsageEvent(
        event_id=uuid.uuid4().hex,
        tenant=who,
        request_id=uuid.uuid4().hex,
        model="all-minilm-l6-v2",
        provider="local",
        prompt_tokens=7,
        completion_tokens=0,
        created_at=time.time(),
    )
    await fuzz_bus.js_publish(subjects.usage(who), event, msg_id=event.event_id)

    async def recorded():
        report = await fuzz_bus.request(subjects.LEDGER_REPORT, ReportRequest(tenant=who), dict)
        return report["totals"]["events"] == 1

    assert await until(recorded)
    assert await settled(fuzz_bus, "USAGE", "cost-ledger")


async def test_the_runner_keeps_taking_runs_after_garbage(fuzz_bus):
    who = tenant()
    await publish_garbage(fuzz_bus, subjects.runs_submit(who))
    submit = RunSubmit(run_id=new_run_id(), tenant=who, agent="chatty", task="hi")
    async with asyncio.timeout(60):
        async with RunFollower(fuzz_bus, who, submit.run_id, tokens=False) as events:
            await submit_run(fuzz_bus, submit)
            async for event in events:
                if is_terminal(event):
                    # No chat model in this world: the run ends, failed, with a typed reason.
                    assert event_type(event) == "failed"
                    break
    assert await settled(fuzz_bus, "RUNS", "agent-runner")


async def test_the_gateway_keeps_keeping_the_audit_log_after_garbage(fuzz_bus):
    who = tenant()
    await publish_garbage(fuzz_bus, subjects.audit(who))
    assert await record_audit(fuzz_bus, audit_event(who, "operator", "key.revoked", target="k"))

    async def kept():
        response = await fuzz_bus.request(
            subjects.GATEWAY_AUDIT_LIST, AuditListRequest(tenant=who), AuditListResponse
        )
        return [event.target for event in response.events] == ["k"]

    assert await until(kept)
    assert await settled(fuzz_bus, "AUDIT", "chat-gateway-audit")
