"""Runs: one piece of agent work (a chat turn, a CI investigation, a workflow).

Submitted as `RunSubmit` to `runs.submit.<tenant>` (stream RUNS, work queue), right after
the submitter has published the run's `queued` event (seq 1, as revo_core.runs.submit_run
does); every step is a `RunEvent` on `runs.events.<tenant>.<run>` (stream RUN_EVENTS,
replayable); token deltas
go to `runs.tokens.<tenant>.<run>` (core NATS); `runs.control.<run>` takes a `RunControl`.

The agent-runner also answers `runs.api.list` and `runs.api.get` from its Postgres copy
of runs and events, so runs stay listable after the streams' retention.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from revo_contracts.inference import ChatMessage, RequestId, TenantId, Usage

RunId = Annotated[str, Meta(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
AgentName = Annotated[str, Meta(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]


class RunLimits(msgspec.Struct, kw_only=True):
    max_steps: Annotated[int, Meta(ge=1, le=1000)] = 20
    max_tokens: Annotated[int, Meta(ge=1)] = 16_384
    wall_time_s: Annotated[float, Meta(gt=0)] = 600.0


class Workspace(msgspec.Struct, kw_only=True):
    """A git repository (a path on the runner's machine, or a URL) checked out per run."""

    repo: Annotated[str, Meta(min_length=1)]
    ref: str | None = None


class RunSubmit(msgspec.Struct, kw_only=True, omit_defaults=True):
    run_id: RunId
    tenant: TenantId
    agent: AgentName
    messages: list[ChatMessage] = []
    task: str | None = None
    session_id: str | None = None
    limits: RunLimits = msgspec.field(default_factory=RunLimits)
    workspace: Workspace | None = None
    submitted_at: float = 0.0
    # Who the run works for, where the submitter knows (the gateway's authenticated
    # subject): agents recall and remember that user's own memories besides the tenant's.
    user: Annotated[str, Meta(min_length=1, max_length=256)] | None = None
    # At most this many tokens in the answer (OpenAI's `max_tokens`): the step that writes
    # the answer is capped to it, and an answer cut there finishes with reason "length".
    answer_max_tokens: Annotated[int, Meta(ge=1)] | None = None


class RunEventBase(msgspec.Struct, kw_only=True, tag_field="type", omit_defaults=True):
    run_id: RunId
    tenant: TenantId
    # Position in the run's event log, from 1; a replayed run continues the numbering.
    seq: Annotated[int, Meta(ge=1)]
    ts: float


class RunQueued(RunEventBase, tag="queued"):
    agent: str


class RunStarted(RunEventBase, tag="started"):
    runner_id: str
    attempt: int = 1


class ModelCalled(RunEventBase, tag="model_call"):
    step: int
    model: str
    request_id: RequestId
    usage: Usage | None = None


class ToolCalled(RunEventBase, tag="tool_called"):
    step: int
    call_id: str
    tool: str
    arguments: dict[str, Any] = {}


class ToolResult(RunEventBase, tag="tool_result"):
    step: int
    call_id: str
    ok: bool
    output: str = ""
    error: str | None = None


class AssistantMessage(RunEventBase, tag="assistant_message"):
    agent: str
    content: str


class WaitingForInput(RunEventBase, tag="waiting_for_input"):
    question: str


class RunFinished(RunEventBase, tag="finished"):
    answer: str
    usage: Usage | None = None
    # Structured result of agents that have one (code-analyst: languages and findings).
    data: dict[str, Any] = {}
    # "length": the answer was cut at the run's answer_max_tokens (or the agent's step limit).
    finish_reason: Literal["stop", "length"] = "stop"


class RunFailed(RunEventBase, tag="failed"):
    # An error code of the contract (not_found, invalid_request, upstream_error, ...) or
    # one of the run guards: limit_exceeded, stuck_loop, invalid_tool_call, gave_up,
    # context_length_exceeded (the prompt does not fit the model's context, even shortened).
    code: str
    reason: str


class RunCancelled(RunEventBase, tag="cancelled"):
    reason: str = ""


RunEvent = (
    RunQueued
    | RunStarted
    | ModelCalled
    | ToolCalled
    | ToolResult
    | AssistantMessage
    | WaitingForInput
    | RunFinished
    | RunFailed
    | RunCancelled
)


TERMINAL_EVENT_TYPES = frozenset({"finished", "failed", "cancelled"})


class TokenDelta(msgspec.Struct, kw_only=True):
    run_id: RunId
    step: int
    delta: str
    # "tool_call": the model is writing a JSON tool call, not text meant for the user.
    kind: Literal["text", "tool_call"] = "text"


class Cancel(msgspec.Struct, kw_only=True, tag_field="type", tag="cancel", omit_defaults=True):
    reason: str = ""
    # Who asked, for the audit log: "operator", "key:<id>", "user:<subject>", a service.
    actor: Annotated[str, Meta(max_length=300)] | None = None


class Answer(msgspec.Struct, kw_only=True, tag_field="type", tag="answer"):
    text: str


RunControl = Cancel | Answer


class ControlAck(msgspec.Struct, kw_only=True):
    """Reply of the replica that holds the run when a control message came as a request."""

    run_id: str
    accepted: bool
    status: str


RunStatus = Literal["queued", "running", "waiting", "finished", "failed", "cancelled"]


class RunSummary(msgspec.Struct, kw_only=True, omit_defaults=True):
    run_id: str
    tenant: str
    agent: str
    status: RunStatus
    created_at: float
    task: str | None = None
    session_id: str | None = None
    started_at: float | None = None
    ended_at: float | None = None
    attempts: int = 0
    steps: int = 0
    total_tokens: int = 0
    answer: str | None = None
    error_code: str | None = None
    error_reason: str | None = None


class RunListRequest(msgspec.Struct, kw_only=True, omit_defaults=True):
    # None lists every tenant's runs (an operator's view); the gateway always sets it.
    tenant: TenantId | None = None
    status: RunStatus | None = None
    agent: str | None = None
    session_id: str | None = None
    limit: Annotated[int, Meta(ge=1, le=500)] = 50


class RunListResponse(msgspec.Struct, kw_only=True):
    runs: list[RunSummary]


class RunGetRequest(msgspec.Struct, kw_only=True, omit_defaults=True):
    run_id: RunId
    tenant: TenantId | None = None
    # Events with seq > after_seq (a client that already has the first ones).
    after_seq: Annotated[int, Meta(ge=0)] = 0


class RunDetail(msgspec.Struct, kw_only=True):
    run: RunSummary
    events: list[RunEvent]


class AgentListRequest(msgspec.Struct, kw_only=True):
    pass


class AgentInfo(msgspec.Struct, kw_only=True):
    name: str
    description: str
    tools: list[str]  # its opening calls' tools first, then those its model may call


class AgentListResponse(msgspec.Struct, kw_only=True):
    """The agents the agent-runner runs (from its agents file), by name."""

    agents: list[AgentInfo]
