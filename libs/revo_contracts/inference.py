"""Messages of the inference service: chat (streamed), embeddings, model listing.

Field names follow OpenAI's chat-completions API where one exists, so the gateway can
translate without surprises.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

TenantId = Annotated[str, Meta(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
RequestId = Annotated[str, Meta(pattern=r"^[A-Za-z0-9_.:-]{1,128}$")]


class FunctionCall(msgspec.Struct, kw_only=True):
    name: str
    arguments: str  # a JSON document, as in OpenAI's API


class ToolCall(msgspec.Struct, kw_only=True):
    id: str
    function: FunctionCall
    type: Literal["function"] = "function"


class ChatMessage(msgspec.Struct, kw_only=True, omit_defaults=True):
    role: Literal["system", "user", "assistant", "tool"]
    content: str = ""
    name: str | None = None
    tool_calls: list[ToolCall] = []
    tool_call_id: str | None = None


class FunctionDef(msgspec.Struct, kw_only=True):
    name: Annotated[str, Meta(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
    description: str = ""
    parameters: dict[str, Any] = msgspec.field(
        default_factory=lambda: {"type": "object", "properties": {}}
    )


class Tool(msgspec.Struct, kw_only=True):
    function: FunctionDef
    type: Literal["function"] = "function"


class JsonSchemaFormat(msgspec.Struct, kw_only=True):
    schema: dict[str, Any]
    name: str = "response"
    strict: bool = True


class ResponseFormat(msgspec.Struct, kw_only=True):
    """`json_schema` constrains the output with the engine's guided decoding."""

    type: Literal["text", "json_object", "json_schema"] = "text"
    json_schema: JsonSchemaFormat | None = None


class Usage(msgspec.Struct, kw_only=True):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class ChatRequest(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One chat completion. The reply is a stream of ChatChunk, the last with usage."""

    messages: Annotated[list[ChatMessage], Meta(min_length=1)]
    tenant: TenantId
    request_id: RequestId
    model: str = "auto"
    max_tokens: Annotated[int, Meta(ge=1)] = 256
    temperature: Annotated[float, Meta(ge=0.0, le=2.0)] = 0.7
    top_p: Annotated[float, Meta(gt=0.0, le=1.0)] = 1.0
    stop: list[str] = []
    seed: int | None = None
    response_format: ResponseFormat | None = None
    tools: list[Tool] = []
    # "auto": tools are shown to the model; "required": the reply is forced (by guided
    # decoding) to be a call of one of `tools`, returned in the last chunk's tool_calls.
    tool_choice: Literal["auto", "none", "required"] = "auto"
    run_id: str | None = None


class ChatChunk(msgspec.Struct, kw_only=True, omit_defaults=True):
    request_id: str
    model: str
    index: int
    delta: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None
    tool_calls: list[ToolCall] = []
    # Where the answer comes from: "local", or the name of the cloud provider.
    provider: str = "local"


class EmbedRequest(msgspec.Struct, kw_only=True):
    texts: Annotated[list[str], Meta(min_length=1, max_length=256)]
    tenant: TenantId
    request_id: RequestId
    model: str = "auto"


class EmbedResponse(msgspec.Struct, kw_only=True):
    model: str
    dimensions: int
    embeddings: list[list[float]]
    usage: Usage


class ModelsRequest(msgspec.Struct, kw_only=True):
    tenant: str | None = None


class ModelInfo(msgspec.Struct, kw_only=True):
    name: str
    kind: Literal["chat", "embed"]
    provider: str = "local"
    max_context: int = 0
    price_per_1m_tokens: float = 0.0
    loaded: bool = False
    dimensions: int | None = None
    aliases: list[str] = []


class ModelsResponse(msgspec.Struct, kw_only=True):
    models: list[ModelInfo]
