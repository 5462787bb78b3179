"""Runs: one piece of agent work (a chat turn, a CI investigation, a workflow).

Submitted as `RunSubmit` to `runs.submit.<tenant>` (stream RUNS, work queue); every step is
a `RunEvent` on `runs.events.<tenant>.<run>` (stream RUN_EVENTS, replayable); token deltas
go to `runs.tokens.<tenant>.<run>` (core NATS); `runs.control.<run>` takes a `RunControl`.

The agent-runner that executes runs is issue 3's work and not built yet; these contracts
are its starting point and may still change before it lands.
"""

from __future__ import annotations

from typing import Annotated, Any

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


class RunFailed(RunEventBase, tag="failed"):
    # An error code of the contract, or `limit_exceeded` / `stuck_loop` for the guards.
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


class TokenDelta(msgspec.Struct, kw_only=True):
    run_id: RunId
    step: int
    delta: str


class Cancel(msgspec.Struct, kw_only=True, tag_field="type", tag="cancel"):
    reason: str = ""


class Answer(msgspec.Struct, kw_only=True, tag_field="type", tag="answer"):
    text: str


RunControl = Cancel | Answer
