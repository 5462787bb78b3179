"""The chat gateway's HTTP API: request and response bodies, from which `/openapi.json`
is generated (the WebSocket frames are in chat.py, the runs' own shapes in runs.py).

The chat-completion shapes are OpenAI's, as far as the gateway fills them, so the official
clients read them unchanged; unknown request fields are ignored as OpenAI's are.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from revo_contracts.ci import (
    CiLogRef,
    CiRepository,
    CiStatus,
    EventId,
    Provider,
    ShortText,
    Url,
)
from revo_contracts.gateway import Role
from revo_contracts.inference import TenantId

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


# Text a run or a session keeps: Postgres's text holds any character but NUL.
Text = Annotated[str, Meta(pattern=r"^[^\x00]*$")]


class TextPart(msgspec.Struct, kw_only=True):
    """One part of a multi-part `content`; only text parts carry meaning for our agents."""

    type: str
    text: Text = ""


MessageContent = Text | list[TextPart]


class _RequestMessage(msgspec.Struct, kw_only=True, tag_field="role"):
    """A message of the conversation, by its `role` (OpenAI's message types): `content` is
    required but for an assistant's (one that called tools instead)."""

    name: Text | None = None
    tool_call_id: Text | None = None

    @property
    def role(self) -> str:
        return self.__struct_config__.tag  # type: ignore[return-value]


class SystemMessage(_RequestMessage, tag="system"):
    content: MessageContent


class DeveloperMessage(_RequestMessage, tag="developer"):
    content: MessageContent


class UserMessage(_RequestMessage, tag="user"):
    content: MessageContent


class AssistantMessage(_RequestMessage, tag="assistant"):
    content: MessageContent | None = None


class ToolMessage(_RequestMessage, tag="tool"):
    content: MessageContent


RequestMessage = SystemMessage | DeveloperMessage | UserMessage | AssistantMessage | ToolMessage
ANSWERABLE_ROLES = ("user", "assistant", "tool")
_ANSWERABLE = {"properties": {"role": {"enum": list(ANSWERABLE_ROLES)}}, "required": ["role"]}


class StreamOptions(msgspec.Struct, kw_only=True):
    include_usage: bool = False


class ChatCompletionBody(msgspec.Struct, kw_only=True):
    """The fields of OpenAI's request the gateway reads; unknown ones are ignored.

    `model` is `revo/<agent>`, or any other name for the `assistant`. `max_completion_tokens`
    (or the older `max_tokens`) caps the answer, which then finishes with "length" when cut;
    temperature is accepted, but each agent's definition decides it."""

    # Not only system (developer) messages: an agent needs something to answer.
    messages: Annotated[
        list[RequestMessage], Meta(min_length=1, extra_json_schema={"contains": _ANSWERABLE})
    ]
    model: str = "auto"
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: Annotated[int, Meta(ge=1)] | None = None
    max_completion_tokens: Annotated[int, Meta(ge=1)] | None = None
    temperature: float | None = None
    # The end user the application names; runs carry at most 256 characters of it.
    user: Annotated[str, Meta(max_length=256, pattern=r"^[^\x00]*$")] | None = None


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


# -- CI events (POST /v1/ci/events) -------------------------------------------------------

# The largest body accepted, after gzip: GitHub's own webhook limit. `revo publish` cuts a
# longer log (head and tail kept) to fit.
CI_EVENT_MAX_BYTES = 25 * 1024 * 1024


class CiEventBody(msgspec.Struct, kw_only=True):
    """A CI outcome from any CI (Jenkins, Buildkite, a shell step): the CiEvent contract's
    fields, with the log as plain text. The gateway stores the log (inline in the event, or
    in CI_LOGS) and publishes the event to `ci.events.<tenant>.<provider>`."""

    status: CiStatus
    provider: Provider = "generic"
    # Absent: derived from provider, repository, workflow id, job id and attempt when one
    # of the ids is given (so a retried publish of the same job is stored once), else new.
    event_id: EventId | None = None
    # The key's tenant always; a different one is refused (403), never published.
    tenant: TenantId | None = None
    repository: CiRepository = msgspec.field(default_factory=CiRepository)
    commit_sha: Annotated[str, Meta(max_length=64)] = ""
    ref: ShortText = ""
    branch: ShortText = ""
    pr_number: Annotated[int, Meta(ge=1)] | None = None
    workflow: ShortText = ""
    workflow_id: ShortText = ""
    job: ShortText = ""
    job_id: ShortText = ""
    run_attempt: Annotated[int, Meta(ge=1)] = 1
    started_at: float | None = None
    finished_at: float | None = None
    url: Url = ""
    job_url: Url = ""
    # The job's log as text (a gzip body carries a large one cheaply); cut to 25 MB, head
    # and tail kept, when longer.
    log: str | None = None


class CiLogStored(msgspec.Struct, kw_only=True):
    """Where the gateway put the log: inside the event, or the CI_LOGS object `ref`."""

    inline: bool
    ref: CiLogRef | None = None
    truncated: bool = False


class CiEventAccepted(msgspec.Struct, kw_only=True):
    event_id: str
    subject: str
    # The stream already held this event (a retry): it was not stored a second time.
    duplicate: bool = False
    log: CiLogStored | None = None
