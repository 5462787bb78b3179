"""The official openai client, streaming from the `assistant` on the real vLLM engine through
the gateway and the agent-runner; one trace from the HTTP request to inference."""

from __future__ import annotations

import secrets

import pytest
from gateway_testkit import openai_client

from revo_core.testing.fixtures import create_api_key


@pytest.fixture(scope="module")
def real_gateway(nats_server, inference_service, runner_factory, gateway_factory):
    runner_factory.start(nats_server.url, "runner-for-gateway")
    return gateway_factory.start(nats_server.url, "gateway-real")


async def test_a_streamed_answer_from_the_real_model_in_one_trace(real_gateway, bus, otlp_receiver):
    key = await create_api_key(bus, "acme")
    client = openai_client(real_gateway, key)
    trace_id = secrets.token_hex(16)

    stream = await client.chat.completions.create(
        model="revo/assistant",
        messages=[{"role": "user", "content": "Say hello to the team in one sentence."}],
        stream=True,
        extra_headers={"traceparent": f"00-{trace_id}-{'2' * 16}-01"},
    )
    deltas = [chunk.choices[0].delta.content async for chunk in stream if chunk.choices]
    text = "".join(d for d in deltas if d)

    assert text.strip(), deltas
    assert len([d for d in deltas if d]) > 1, "tokens arrived one by one"
    served = otlp_receiver.wait_for(trace_id, "POST /v1/chat/completions", timeout=30)
    assert served.service == "chat-gateway"
    assert otlp_receiver.wait_for(trace_id, "run assistant", timeout=30).service == "agent-runner"
    inference = otlp_receiver.wait_for(trace_id, "inference.chat process", timeout=30)
    assert inference.service == "inference"
