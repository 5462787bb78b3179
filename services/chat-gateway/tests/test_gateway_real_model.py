"""The official openai client, streaming from the `assistant` on the real vLLM engine through
the gateway and the agent-runner; one trace from the HTTP request to inference."""

from __future__ import annotations

import asyncio
import secrets

import aiohttp
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


async def test_a_websocket_chat_streams_the_real_model_in_one_trace(
    real_gateway, bus, otlp_receiver
):
    key = await create_api_key(bus, "acme")
    trace_id = secrets.token_hex(16)
    url = f"ws://127.0.0.1:{real_gateway.http_port}/v1/ws?token={key}"
    message = {
        "type": "message",
        "content": "Say hello to the team in one sentence.",
        "traceparent": f"00-{trace_id}-{'3' * 16}-01",
    }

    frames = []
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        await ws.send_json(message)
        async with asyncio.timeout(120):
            while not frames or frames[-1].get("kind") != "assistant":
                frames.append(await ws.receive_json())

    tokens = [f["delta"] for f in frames if f["type"] == "token"]
    answer = frames[-1]
    assert len(tokens) > 1, "tokens arrived one by one"
    assert answer["agent"] == "assistant" and answer["content"].strip()
    assert "".join(tokens).strip() == answer["content"].strip()
    served = otlp_receiver.wait_for(trace_id, "chat message", timeout=30)
    assert served.service == "chat-gateway"
    assert otlp_receiver.wait_for(trace_id, "run assistant", timeout=30).service == "agent-runner"
    inference = otlp_receiver.wait_for(trace_id, "inference.chat process", timeout=30)
    assert inference.service == "inference"
