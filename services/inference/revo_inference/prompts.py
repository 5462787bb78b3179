"""From a ChatRequest to what the engine takes: chat messages, sampling, guided decoding.

Small local models have no tool-calling template, so tools are described in a system
message, and with tool_choice="required" the output is constrained to a JSON schema of
`{"name": <tool>, "arguments": {...}}` by vLLM's guided decoding: the call always parses.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
from vllm import SamplingParams
from vllm.sampling_params import RequestOutputKind, StructuredOutputsParams

from revo_contracts.inference import ChatMessage, ChatRequest, FunctionCall, Tool, ToolCall
from revo_core.errors import InvalidRequest


def engine_messages(request: ChatRequest) -> list[dict[str, Any]]:
    messages = [_as_template_message(m) for m in request.messages]
    if request.tools and request.tool_choice != "none":
        messages.insert(0, {"role": "system", "content": _describe_tools(request.tools)})
    return messages


def _as_template_message(message: ChatMessage) -> dict[str, Any]:
    content = message.content
    if message.tool_calls and not content:
        # The template only knows text: show earlier calls as the JSON the model wrote.
        content = json.dumps(
            [
                {"name": c.function.name, "arguments": c.function.arguments}
                for c in message.tool_calls
            ]
        )
    return {"role": message.role, "content": content}


def _describe_tools(tools: list[Tool]) -> str:
    lines = [
        "You can call these tools. To call one, answer with JSON "
        '{"name": <tool name>, "arguments": {...}}.'
    ]
    for tool in tools:
        fn = tool.function
        lines.append(f"- {fn.name}: {fn.description} Arguments schema: {json.dumps(fn.parameters)}")
    return "\n".join(lines)


def sampling_params(request: ChatRequest) -> SamplingParams:
    return SamplingParams(
        max_tokens=request.max_tokens,
        temperature=request.temperature,
        top_p=request.top_p,
        stop=request.stop or None,
        seed=request.seed,
        output_kind=RequestOutputKind.DELTA,
        structured_outputs=_structured_outputs(request),
    )


def _structured_outputs(request: ChatRequest) -> StructuredOutputsParams | None:
    if request.tools and request.tool_choice == "required":
        return StructuredOutputsParams(json=tool_call_schema(request.tools))
    fmt = request.response_format
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_object":
        return StructuredOutputsParams(json_object=True)
    if fmt.json_schema is None:
        raise InvalidRequest(
            "response_format.json_schema is required when type is json_schema",
            {"field": "response_format.json_schema"},
        )
    return StructuredOutputsParams(json=fmt.json_schema.schema)


def tool_call_schema(tools: list[Tool]) -> dict[str, Any]:
    """JSON schema that admits exactly one call of one of `tools`."""
    options = [
        {
            "type": "object",
            "properties": {
                "name": {"const": tool.function.name},
                "arguments": tool.function.parameters,
            },
            "required": ["name", "arguments"],
            "additionalProperties": False,
        }
        for tool in tools
    ]
    return options[0] if len(options) == 1 else {"anyOf": options}


class _RawCall(msgspec.Struct):
    name: str
    arguments: dict[str, Any]


def parse_tool_call(text: str, request_id: str) -> ToolCall | None:
    """Decode the guided output into an OpenAI-style tool call; None if it was cut short
    (max_tokens reached), in which case the caller gets the text and finish_reason."""
    try:
        raw = msgspec.json.decode(text, type=_RawCall)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    return ToolCall(
        id=f"call_{request_id}",
        function=FunctionCall(name=raw.name, arguments=json.dumps(raw.arguments)),
    )
