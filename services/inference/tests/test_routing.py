"""The local-first router, end to end: a second inference service (real vLLM, the embedded
model) whose config adds two cloud providers played by a real HTTP server, a real cost
ledger holding the budgets, all on a NATS of their own (the session's inference service
must not share the `inference` queue group with this one)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psutil
import pytest
from inference_testkit import EMBEDDED_CHAT_MODEL, chat_request, collect
from opentelemetry import trace
from test_usage_and_tracing import usage_events

from revo_contracts import subjects
from revo_contracts.inference import ChatChunk
from revo_contracts.ledger import BudgetRequest, BudgetStatus
from revo_core.bus import Bus
from revo_core.embedded.nats_server import NatsServer
from revo_core.embedded.ports import free_port
from revo_core.embedded.service_process import ServiceProcess
from revo_core.errors import BudgetExceeded, Forbidden, UpstreamError
from revo_core.jetstream import ensure_streams
from revo_core.streaming import stream_request
from revo_core.testing.fixtures import (
    INFERENCE_READY_TIMEOUT_S,
    inference_env,
    nats_server_of,
    operator_bus,
)
from revo_core.testing.metrics import metric_value
from revo_core.testing.openai_server import OpenAIServer

# Round prices: a token of cloud-small costs 1 micro-dollar in, 2 out.
PRICES = """
reference: cloud-small
cloud:
  cloud-small: {input_per_1m: 1.00, output_per_1m: 2.00}
  cloud-big: {input_per_1m: 10.00, output_per_1m: 30.00}
local:
  smollm2-135m-instruct: {gpu_hourly_usd: 0.36, output_tokens_per_s: 1000}
"""

MODELS = """
models:
  - name: smollm2-135m-instruct
    kind: chat
    path: embedded
    aliases: [auto]
    max_context: 2048
    dtype: float32
    kv_cache_gb: 1
    fallback: [cloud-small]
  # Listed, not loaded here: its requests go to its fallback.
  - name: big-local
    kind: chat
    path: /nowhere
    load: false
    max_context: 32768
    aliases: [smart]
    fallback: [cloud-big]
providers:
  - name: primary
    base_url: {primary}
    api_key_env: REVO_TEST_PRIMARY_KEY
    first_token_timeout_s: 1.5
    idle_timeout_s: 1.5
    cooldown_s: 1
    models:
      - {{name: cloud-small, model: upstream-small}}
      - {{name: cloud-big}}
  - name: backup
    base_url: {backup}
    api_key_file: {key_file}
    cooldown_s: 1
    models:
      - {{name: cloud-small}}
      - {{name: cloud-big}}
routing:
  default_policy: {{cloud: allow}}
  tenants:
    localonly: {{cloud: deny}}
"""

COOLDOWN_S = 1.0
LONG_PROMPT = "word " * 2100  # beyond the local model's 2048-token context


@pytest.fixture(scope="module")
def routing_nats(revo_tmp: Path, bus_authority) -> Iterator[NatsServer]:
    server = nats_server_of(revo_tmp / "nats-routing", bus_authority)
    yield server
    server.stop()


@pytest.fixture(scope="module")
async def cloud() -> AsyncIterator[OpenAIServer]:
    server = await OpenAIServer().start()
    yield server
    await server.stop()


@pytest.fixture(scope="module")
def routing_ledger(routing_nats, ledger_factory, revo_tmp: Path) -> ServiceProcess:
    prices = revo_tmp / "routing-prices.yaml"
    prices.write_text(PRICES)
    return ledger_factory.start(
        routing_nats.url,
        "ledger-routing",
        REVO_COST_LEDGER_PRICES_FILE=str(prices),
        REVO_COST_LEDGER_DEFAULT_POLICY="allow",
    )


@pytest.fixture(scope="module")
def router_service(
    routing_nats, routing_ledger, cloud, otlp_receiver, revo_tmp: Path
) -> Iterator[ServiceProcess]:
    key_file = revo_tmp / "backup.key"
    key_file.write_text("sk-backup\n")
    models = revo_tmp / "routing-models.yaml"
    models.write_text(
        MODELS.format(
            primary=cloud.base_url("primary"), backup=cloud.base_url("backup"), key_file=key_file
        )
    )
    port = free_port()
    env = inference_env(routing_nats.url, port, otlp_receiver.endpoint)
    env.update(REVO_INFERENCE_MODELS_FILE=str(models), REVO_TEST_PRIMARY_KEY="sk-primary")
    service = ServiceProcess(
        "revo_inference", port, env, revo_tmp / "logs" / "inference-routing.log"
    )
    service.start()
    try:
        service.wait_ready(INFERENCE_READY_TIMEOUT_S)
    except Exception:
        service.stop(timeout=5)
        raise
    yield service
    service.stop()


@pytest.fixture
async def rbus(routing_nats, router_service, cloud) -> AsyncIterator[Bus]:
    connection = await operator_bus(routing_nats, "pytest-routing")
    await ensure_streams(connection.js)
    cloud.reset()
    yield connection
    await connection.close()


def tenant() -> str:
    return f"t{uuid.uuid4().hex[:8]}"


async def wait_for_cooldown() -> None:
    await asyncio.sleep(COOLDOWN_S + 0.2)


async def test_a_request_the_local_model_can_serve_runs_locally(rbus, cloud):
    who = tenant()
    chunks = await collect(rbus, chat_request("Say hello.", tenant=who, max_tokens=8))

    assert chunks[-1].model == EMBEDDED_CHAT_MODEL
    assert all(c.provider == "local" for c in chunks)
    assert cloud.received == []
    [event] = await usage_events(rbus, who, expected=1)
    assert event.provider == "local" and event.route_reason == "local"


async def test_a_prompt_beyond_the_local_context_goes_to_the_cloud_with_its_reason(
    rbus, cloud, otlp_receiver
):
    who = tenant()
    with trace.get_tracer("test").start_as_current_span("caller") as caller:
        chunks = await collect(rbus, chat_request(LONG_PROMPT, tenant=who, max_tokens=8))

    assert "".join(c.delta for c in chunks) == cloud.answer("primary")
    assert chunks[-1].provider == "primary" and chunks[-1].model == "cloud-small"
    assert chunks[-1].usage.prompt_tokens == 100 and chunks[-1].usage.completion_tokens == 5
    [sent] = cloud.received
    assert sent.body["model"] == "upstream-small"
    assert sent.authorization == "Bearer sk-primary"
    assert sent.body["messages"][0]["content"] == LONG_PROMPT
    [event] = await usage_events(rbus, who, expected=1)
    assert (event.provider, event.model) == ("primary", "cloud-small")
    assert event.route_reason == "context_exceeded"
    assert (event.prompt_tokens, event.completion_tokens) == (100, 5)
    trace_id = format(caller.get_span_context().trace_id, "032x")
    span = otlp_receiver.wait_for(trace_id, "inference.chat process")
    assert span.attributes["revo.route.reason"] == "context_exceeded"
    assert span.attributes["revo.route.provider"] == "primary"
    # The hold and the provider call are children of the routed request.
    reserve = otlp_receiver.wait_for(trace_id, "ledger.reserve publish")
    provider_call = otlp_receiver.wait_for(trace_id, "chat cloud-small")
    assert reserve.parent_span_id == span.span_id
    assert provider_call.parent_span_id == span.span_id
    assert provider_call.attributes["gen_ai.system"] == "primary"
    assert otlp_receiver.wait_for(trace_id, "ledger.reserve process").service == "cost-ledger"
    # ... and the ledger's recording of the request's usage event closes the same trace.
    recording = otlp_receiver.wait_for(trace_id, f"usage.{who} process")
    assert recording.service == "cost-ledger"
    assert recording.attributes["gen_ai.response.model"] == "cloud-small"


async def test_a_model_not_loaded_here_is_served_by_its_cloud_fallback(rbus, cloud):
    who = tenant()
    chunks = await collect(rbus, chat_request("Hi", tenant=who, model="smart", max_tokens=8))

    assert chunks[-1].model == "cloud-big" and chunks[-1].provider == "primary"
    [event] = await usage_events(rbus, who, expected=1)
    assert event.route_reason == "local_not_loaded"


async def test_the_cloud_cost_is_settled_against_the_tenants_budget(rbus, cloud):
    who = tenant()
    budget = BudgetRequest(tenant=who, action="set", period="month", limit_micros=1_000_000)
    await rbus.request(subjects.LEDGER_BUDGET, budget, BudgetStatus)

    await collect(rbus, chat_request(LONG_PROMPT, tenant=who, max_tokens=8))

    # 100 prompt tokens at 1 micro-dollar, 5 completion tokens at 2: 110, settled or recorded.
    status = await poll_budget(rbus, who, lambda s: s.spent_micros == 110)
    assert status.held_micros == 0


async def poll_budget(bus, who: str, done, timeout: float = 10.0) -> BudgetStatus:
    deadline = time.monotonic() + timeout
    while True:
        status = await bus.request(subjects.LEDGER_BUDGET, BudgetRequest(tenant=who), BudgetStatus)
        if done(status) or time.monotonic() > deadline:
            return status
        await asyncio.sleep(0.2)


async def test_an_exhausted_budget_is_budget_exceeded_and_no_call_reaches_the_cloud(rbus, cloud):
    who = tenant()
    budget = BudgetRequest(tenant=who, action="set", period="month", limit_micros=1)
    await rbus.request(subjects.LEDGER_BUDGET, budget, BudgetStatus)

    with pytest.raises(BudgetExceeded) as err:
        await collect(rbus, chat_request(LONG_PROMPT, tenant=who, max_tokens=8))

    assert err.value.details["route_reason"] == "context_exceeded"
    assert cloud.received == []


async def test_a_tenant_whose_policy_forbids_cloud_gets_a_clear_error(rbus, cloud):
    with pytest.raises(Forbidden) as err:
        await collect(rbus, chat_request(LONG_PROMPT, tenant="localonly", max_tokens=8))

    assert "may not use cloud models" in err.value.message
    assert "context" in err.value.message
    assert err.value.details["route_reason"] == "context_exceeded"
    assert cloud.received == []


@pytest.mark.parametrize("failure", ["fail", "stall"])
async def test_a_provider_that_fails_hands_the_request_to_the_next(rbus, cloud, failure):
    cloud.modes["primary"] = failure
    who = tenant()

    chunks = await collect(rbus, chat_request(LONG_PROMPT, tenant=who, max_tokens=8))

    assert "".join(c.delta for c in chunks) == cloud.answer("backup")
    assert [r.provider for r in cloud.received] == ["primary", "backup"]
    assert cloud.received[1].authorization == "Bearer sk-backup"
    [event] = await usage_events(rbus, who, expected=1)
    assert event.provider == "backup" and event.route_reason == "context_exceeded"
    await wait_for_cooldown()


async def test_a_stream_cut_midway_ends_with_an_error_not_a_short_answer(rbus, cloud):
    cloud.modes["primary"] = "cut"
    request = chat_request(LONG_PROMPT, tenant=tenant(), max_tokens=8)
    received = []

    with pytest.raises(UpstreamError) as err:
        async with stream_request(rbus, subjects.INFERENCE_CHAT, request, ChatChunk) as chunks:
            async for chunk in chunks:
                received.append(chunk)

    assert len(received) == cloud.cut_after
    assert "incomplete" in err.value.message
    assert err.value.details["provider"] == "primary"
    assert [r.provider for r in cloud.received] == ["primary"]  # no second answer spliced in
    await wait_for_cooldown()


async def test_metrics_show_the_local_share_and_the_fallbacks_by_reason(rbus, router_service):
    await collect(rbus, chat_request("Hi", tenant=tenant(), max_tokens=4))

    def value(name: str, **labels: str) -> float:
        return metric_value(router_service, name, **labels)

    assert value("revo_inference_fallbacks_total", reason="context_exceeded") >= 1
    assert value("revo_inference_routed_requests_total", route="local", reason="local") >= 1
    assert value("revo_inference_routed_requests_total", route="cloud") >= 1
    assert 0 < value("revo_inference_local_share") < 1


# Last in this module: it leaves the service without a working local engine.
async def test_a_stopped_local_engine_sends_requests_to_the_cloud_with_its_reason(
    rbus, cloud, router_service
):
    kill_engine_core(router_service)
    caught, noticed = tenant(), tenant()

    # Sent before vLLM has noticed: the local call fails, and the cloud takes over.
    chunks = await collect(rbus, chat_request("Say hello.", tenant=caught, max_tokens=8))
    await wait_until_unready(router_service)
    later = await collect(rbus, chat_request("Say hello.", tenant=noticed, max_tokens=8))

    assert chunks[-1].provider == "primary" and later[-1].provider == "primary"
    [first] = await usage_events(rbus, caught, expected=1)
    assert first.route_reason in {"local_failed", "local_unhealthy"}
    [event] = await usage_events(rbus, noticed, expected=1)
    assert event.route_reason == "local_unhealthy"


def kill_engine_core(service: ServiceProcess) -> None:
    """SIGKILL vLLM's EngineCore process, as an OOM kill or a crash would end it."""
    children = psutil.Process(service.process.pid).children(recursive=True)
    cores = [p for p in children if "EngineCore" in p.name() + " ".join(p.cmdline())]
    assert cores, "no EngineCore process found"
    for core in cores:
        core.kill()


async def wait_until_unready(service: ServiceProcess, timeout: float = 20.0) -> None:
    """/readyz turns false once vLLM has marked its engine dead."""
    deadline = time.monotonic() + timeout
    while await asyncio.to_thread(service.is_ready):
        assert time.monotonic() < deadline, "the service never noticed its dead engine"
        await asyncio.sleep(0.2)
