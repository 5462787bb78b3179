"""The chat gateway's HTTP API: request and response bodies, from which `/openapi.json`
is generated (the WebSocket frames are in chat.py, the runs' own shapes in runs.py).

The chat-completion shapes are OpenAI's, as far as the gateway fills them, so the official
clients read them unchanged; unknown request fields are ignored as OpenAI's are.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from revo_contracts.gateway import Role

# -- errors -------------------------------------------------------------------------------


class ErrorDetail(msgspec.Struct, kw_only=True):
    message: str
    type: str
    code: str


class ErrorBody(msgspec.Struct, kw_only=True):
    """Every error, in OpenAI's shape: the official clients raise their typed errors."""

    error: ErrorDetail


# -- who am I -----------------------------------------------------------------------------


class Whoami(msgspec.Struct, kw_only=True):
    tenant: str
    role: Role
    via: Literal["api_key", "jwt"]


# -- models -------------------------------------------------------------------------------


class ModelEntry(msgspec.Struct, kw_only=True):
    """An agent as an OpenAI model: `revo/<agent>`."""

    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "revo"
    description: str = ""
    tools: list[str] = []


class ModelList(msgspec.Struct, kw_only=True):
    object: Literal["list"] = "list"
    data: list[ModelEntry]


# -- chat completions ---------------------------------------------------------------------


class TextPart(msgspec.Struct, kw_only=True):
    """One part of a multi-part `content`; only text parts carry meaning for our agents."""

    type: str
    text: str = ""


class RequestMessage(msgspec.Struct, kw_only=True):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None
    name: str | None = None
    tool_call_id: str | None = None


class StreamOptions(msgspec.Struct, kw_only=True):
    include_usage: bool = False


class ChatCompletionBody(msgspec.Struct, kw_only=True):
    """The fields of OpenAI's request the gateway reads; unknown ones are ignored.

    `model` is `revo/<agent>`, or any other name for the `assistant`. `max_completion_tokens`
    (or the older `max_tokens`) caps the answer, which then finishes with "length" when cut;
    temperature is accepted, but each agent's definition decides it."""

    messages: Annotated[list[RequestMessage], Meta(min_length=1)]
    model: str = "auto"
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: Annotated[int, Meta(ge=1)] | None = None
    max_completion_tokens: Annotated[int, Meta(ge=1)] | None = None
    temperature: float | None = None
    # The end user the application names; runs carry at most 256 characters of it.
    user: Annotated[str, Meta(max_length=256)] | None = None


class CompletionUsage(msgspec.Struct, kw_only=True):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class CompletionMessage(msgspec.Struct, kw_only=True):
    role: Literal["assistant"] = "assistant"
    content: str


class CompletionChoice(msgspec.Struct, kw_only=True):
    index: int
    message: CompletionMessage
    finish_reason: Literal["stop", "length"]


class ChatCompletion(msgspec.Struct, kw_only=True):
    """The answer of a run (non-streamed); the run's id is in the X-Revo-Run-Id header."""

    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: CompletionUsage


class ChunkDelta(msgspec.Struct, kw_only=True, omit_defaults=True):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChunkChoice(msgspec.Struct, kw_only=True):
    index: int
    delta: ChunkDelta
    finish_reason: Literal["stop", "length"] | None = None


class ChatCompletionChunk(msgspec.Struct, kw_only=True):
    """One `data:` event of a streamed answer; the stream ends with `data: [DONE]`, and a
    run that fails after the stream began sends an ErrorBody event instead."""

    id: str
    object: Literal["chat.completion.chunk"]
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: CompletionUsage | None = None


# -- runs and sessions --------------------------------------------------------------------


class CancelResult(msgspec.Struct, kw_only=True):
    run_id: str
    # False: no runner holds the run now (queued: the cancel applies when it is taken; or
    # already ended).
    accepted: bool
    status: str


class SessionInfo(msgspec.Struct, kw_only=True):
    id: str
    title: str | None  # the first user message, cut to 80 characters
    created_at: str  # ISO 8601
    updated_at: str  # when its latest item was stored
    last_seq: int


class SessionList(msgspec.Struct, kw_only=True):
    object: Literal["list"] = "list"
    data: list[SessionInfo]
