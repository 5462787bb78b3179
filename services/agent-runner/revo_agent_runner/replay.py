"""What a run's event log says about where it stands: the state a resumed run continues from.

The same `apply` moves the state forward as events are written, so a run that resumes on
another replica sees exactly what the first replica saw.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field

from revo_agent_runner.store import Progress
from revo_contracts.inference import ChatMessage, FunctionCall, ToolCall
from revo_contracts.runs import (
    AssistantMessage,
    ModelCalled,
    RunCancelled,
    RunEvent,
    RunFailed,
    RunFinished,
    RunStarted,
    ToolCalled,
    ToolResult,
    WaitingForInput,
)

# The step of calls the runner makes for the agent before its first step (the assistant's
# recall): their results go into the system prompt, not into the conversation.
CONTEXT_STEP = 0


def call_key(tool: str, arguments: dict) -> str:
    """Identity of a call for the stuck-loop guard: the tool and its canonical arguments."""
    return f"{tool} {json.dumps(arguments, sort_keys=True, separators=(',', ':'))}"


@dataclass
class RunState:
    status: str = "queued"
    attempts: int = 0
    first_started_at: float | None = None
    steps: int = 0
    total_tokens: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    # The conversation after the input: tool calls, their results, assistant messages.
    conversation: list[ChatMessage] = field(default_factory=list)
    call_counts: Counter[str] = field(default_factory=Counter)
    # Calls recorded as made whose result was never recorded (the runner died in between).
    pending: dict[str, ToolCalled] = field(default_factory=dict)
    results: dict[str, ToolResult] = field(default_factory=dict)
    calls: dict[str, ToolCalled] = field(default_factory=dict)
    questions_answered: int = 0
    answer: str | None = None
    error_code: str | None = None
    error_reason: str | None = None
    ended_at: float | None = None

    @classmethod
    def from_events(cls, events: list[RunEvent]) -> RunState:
        state = cls()
        for event in events:
            state.apply(event)
        return state

    @property
    def ended(self) -> bool:
        return self.status in ("finished", "failed", "cancelled")

    def progress(self) -> Progress:
        """The run's summary columns as of the last event applied."""
        return Progress(
            status=self.status,
            steps=self.steps,
            total_tokens=self.total_tokens,
            answer=self.answer,
            error_code=self.error_code,
            error_reason=self.error_reason,
            ended_at=self.ended_at,
        )

    def apply(self, event: RunEvent) -> None:
        handler = _HANDLERS.get(type(event))
        if handler is not None:
            handler(self, event)

    def _started(self, event: RunStarted) -> None:
        self.status = "running"
        self.attempts = max(self.attempts, event.attempt)
        self.first_started_at = self.first_started_at or event.ts

    def _model_called(self, event: ModelCalled) -> None:
        self.steps = max(self.steps, event.step)
        if event.usage is not None:
            self.total_tokens += event.usage.total_tokens
            self.prompt_tokens += event.usage.prompt_tokens
            self.completion_tokens += event.usage.completion_tokens

    def _tool_called(self, event: ToolCalled) -> None:
        self.steps = max(self.steps, event.step)
        self.calls[event.call_id] = event
        self.pending[event.call_id] = event
        if event.step == CONTEXT_STEP:
            return
        self.call_counts[call_key(event.tool, event.arguments)] += 1
        call = ToolCall(
            id=event.call_id,
            function=FunctionCall(name=event.tool, arguments=json.dumps(event.arguments)),
        )
        self.conversation.append(ChatMessage(role="assistant", tool_calls=[call]))

    def _tool_result(self, event: ToolResult) -> None:
        self.status = "running"
        called = self.pending.pop(event.call_id, None)
        self.results[event.call_id] = event
        if called is not None and called.tool == "ask_user":
            self.questions_answered += 1
        if event.step == CONTEXT_STEP:
            return
        content = event.output if event.ok else f"error: {event.error}"
        self.conversation.append(
            ChatMessage(role="tool", content=content, tool_call_id=event.call_id)
        )

    def _assistant_message(self, event: AssistantMessage) -> None:
        self.conversation.append(ChatMessage(role="assistant", content=event.content))

    def _waiting(self, _: WaitingForInput) -> None:
        self.status = "waiting"

    def _finished(self, event: RunFinished) -> None:
        self.status, self.answer, self.ended_at = "finished", event.answer, event.ts

    def _failed(self, event: RunFailed) -> None:
        self.status, self.ended_at = "failed", event.ts
        self.error_code, self.error_reason = event.code, event.reason

    def _cancelled(self, event: RunCancelled) -> None:
        self.status, self.ended_at = "cancelled", event.ts
        self.error_reason = event.reason or None


_HANDLERS = {
    RunStarted: RunState._started,
    ModelCalled: RunState._model_called,
    ToolCalled: RunState._tool_called,
    ToolResult: RunState._tool_result,
    AssistantMessage: RunState._assistant_message,
    WaitingForInput: RunState._waiting,
    RunFinished: RunState._finished,
    RunFailed: RunState._failed,
    RunCancelled: RunState._cancelled,
}
