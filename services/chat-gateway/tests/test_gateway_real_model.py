"""The official openai client, streaming from the `assistant` on the real vLLM engine through
the gateway and the agent-runner; one trace from the HTTP request to inference."""

from __future__ import annotations

import asyncio
import secrets

import aiohttp
import openai
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


async def test_max_tokens_cuts_the_real_model_s_answer_and_says_length(real_gateway, bus):
    key = await create_api_key(bus, "acme")
    client = openai_client(real_gateway, key)
    ask = [{"role": "user", "content": "Count from one to fifty in words, one per line."}]

    completion = await client.chat.completions.create(
        model="revo/assistant", messages=ask, max_tokens=4
    )
    stream = await client.chat.completions.create(
        model="revo/assistant", messages=ask, max_completion_tokens=4, stream=True
    )
    chunks = [chunk async for chunk in stream if chunk.choices]

    assert completion.choices[0].finish_reason == "length"
    assert 0 < len(completion.choices[0].message.content) < 60
    assert chunks[-1].choices[0].finish_reason == "length"
    assert len([c for c in chunks if c.choices[0].delta.content]) <= 4


async def test_a_prompt_beyond_the_real_model_s_context_is_context_length_exceeded(
    real_gateway, bus
):
    key = await create_api_key(bus, "acme")
    client = openai_client(real_gateway, key)
    too_long = [{"role": "user", "content": "tell me about this: " + "hello " * 5000}]

    for stream in (False, True):
        with pytest.raises(openai.BadRequestError) as raised:
            async with asyncio.timeout(60):  # failed once, not retried until gave_up
                await client.chat.completions.create(
                    model="revo/assistant", messages=too_long, stream=stream
                )
        assert raised.value.code == "context_length_exceeded"
        assert "token context" in raised.value.message
