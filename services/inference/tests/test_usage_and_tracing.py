"""Usage events land in USAGE exactly once; one trace runs from the caller into inference."""

from __future__ import annotations

import uuid

import pytest
from inference_testkit import EMBEDDED_CHAT_MODEL, chat_request, collect
from opentelemetry import trace

from revo_contracts import subjects
from revo_contracts.inference import EmbedRequest, EmbedResponse
from revo_contracts.usage import UsageEvent
from revo_core.codec import decode

pytestmark = pytest.mark.usefixtures("inference_service")


async def usage_events(bus, tenant: str, expected: int) -> list[UsageEvent]:
    """Every event stored for `tenant`, read with an ephemeral consumer."""
    sub = await bus.js.pull_subscribe(subjects.usage(tenant), durable=None, stream="USAGE")
    events: list[UsageEvent] = []
    try:
        while True:
            batch = await sub.fetch(100, timeout=2 if len(events) < expected else 0.5)
            events.extend(decode(m.data, UsageEvent) for m in batch)
    except TimeoutError:
        pass
    finally:
        await sub.unsubscribe()
    return events


async def test_each_chat_request_publishes_one_usage_event_with_its_tokens(bus):
    tenant = f"t{uuid.uuid4().hex[:8]}"
    request = chat_request("Say hello.", tenant=tenant, max_tokens=8, run_id="run-1")

    chunks = await collect(bus, request)

    [event] = await usage_events(bus, tenant, expected=1)
    assert event.event_id == request.request_id
    assert event.model == EMBEDDED_CHAT_MODEL
    assert event.provider == "local" and event.route_reason == "local"
    assert event.prompt_tokens == chunks[-1].usage.prompt_tokens
    assert event.completion_tokens == chunks[-1].usage.completion_tokens
    assert event.ttft_ms is not None and event.ttft_ms > 0
    assert event.run_id == "run-1"


async def test_a_usage_event_published_twice_is_stored_once(bus):
    tenant = f"t{uuid.uuid4().hex[:8]}"
    request = chat_request("Say hello.", tenant=tenant, max_tokens=4)
    await collect(bus, request)
    [stored] = await usage_events(bus, tenant, expected=1)

    # A retry after a lost ack republishes with the same Nats-Msg-Id.
    ack = await bus.js_publish(subjects.usage(tenant), stored, msg_id=stored.event_id)

    assert ack.duplicate
    assert len(await usage_events(bus, tenant, expected=1)) == 1


async def test_embeddings_are_real_and_publish_usage(bus):
    tenant = f"t{uuid.uuid4().hex[:8]}"
    texts = [
        "The build failed on a missing import.",
        "CI broke: an import is missing.",
        "I like tea.",
    ]
    request = EmbedRequest(texts=texts, tenant=tenant, request_id=f"emb-{uuid.uuid4().hex}")

    reply = await bus.request(subjects.INFERENCE_EMBED, request, EmbedResponse, timeout=30)

    assert reply.dimensions == 384 and len(reply.embeddings) == 3
    a, b, c = reply.embeddings
    similar = sum(x * y for x, y in zip(a, b, strict=True))
    unrelated = sum(x * y for x, y in zip(a, c, strict=True))
    assert similar > unrelated + 0.2
    [event] = await usage_events(bus, tenant, expected=1)
    assert event.kind == "embed" and event.prompt_tokens == reply.usage.prompt_tokens


async def test_one_trace_runs_from_the_callers_span_into_the_inference_span(bus, otlp_receiver):
    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("caller") as caller:
        await collect(bus, chat_request("Say hi.", max_tokens=4))
    trace_id = format(caller.get_span_context().trace_id, "032x")

    span = otlp_receiver.wait_for(trace_id, "inference.chat process")

    assert span.service == "inference"
    assert span.parent_span_id  # a child of the caller's publish span, not a new root
    assert span.attributes["messaging.system"] == "nats"
    assert span.attributes["revo.tenant"] == "acme"
    assert span.attributes["gen_ai.response.model"] == EMBEDDED_CHAT_MODEL
    assert span.attributes["revo.route.reason"] == "local"
    assert span.attributes["gen_ai.usage.output_tokens"] > 0
