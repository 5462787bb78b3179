"""inference.chat against the real vLLM engine with the embedded model."""

from __future__ import annotations

import asyncio
import json

import pytest
from inference_testkit import chat_request, collect

from revo_contracts.inference import FunctionDef, JsonSchemaFormat, ResponseFormat, Tool

pytestmark = pytest.mark.usefixtures("inference_service")


async def test_a_streamed_answer_arrives_in_several_chunks_ending_with_usage(bus):
    chunks = await collect(bus, chat_request("What is the capital of France?"))

    assert len(chunks) > 1
    assert [c.index for c in chunks] == list(range(len(chunks)))
    text = "".join(c.delta for c in chunks)
    assert "Paris" in text
    last = chunks[-1]
    assert last.finish_reason in {"stop", "length"}
    assert last.usage is not None
    assert last.usage.prompt_tokens > 0
    assert last.usage.completion_tokens == last.usage.total_tokens - last.usage.prompt_tokens
    assert all(c.usage is None for c in chunks[:-1])


async def test_eight_concurrent_requests_all_complete_with_usage(bus):
    requests = [chat_request(f"Count from 1 to {n + 3}.", max_tokens=24) for n in range(8)]

    results = await asyncio.gather(*(collect(bus, r) for r in requests))

    for request, chunks in zip(requests, results, strict=True):
        assert chunks[-1].request_id == request.request_id
        assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


async def test_json_schema_output_is_constrained_by_guided_decoding(bus):
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "country": {"type": "string"}},
        "required": ["city", "country"],
        "additionalProperties": False,
    }
    request = chat_request(
        "Name the capital of France as JSON.",
        max_tokens=64,
        response_format=ResponseFormat(
            type="json_schema", json_schema=JsonSchemaFormat(schema=schema)
        ),
    )

    chunks = await collect(bus, request)

    answer = json.loads("".join(c.delta for c in chunks))
    assert set(answer) == {"city", "country"}


async def test_required_tool_choice_returns_a_parseable_tool_call(bus):
    tool = Tool(
        function=FunctionDef(
            name="read_file",
            description="Read a file of the repository.",
            parameters={
                "type": "object",
                "properties": {"path": {"type": "string"}},
                "required": ["path"],
            },
        )
    )
    request = chat_request(
        "Show me the README.md file.", tools=[tool], tool_choice="required", max_tokens=64
    )

    chunks = await collect(bus, request)

    last = chunks[-1]
    assert last.finish_reason == "tool_calls"
    assert last.tool_calls[0].function.name == "read_file"
    assert "path" in json.loads(last.tool_calls[0].function.arguments)
