"""The agent loop: ask the model for the next step, run the tool it chose, record both.

Every step is an event before it is acted on, so a run resumed elsewhere continues where
the log stops: steps with a recorded result are not repeated, and a call with side effects
that was recorded but has no result is reported to the model as interrupted, never rerun.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from revo_agent_runner import metrics, prompting
from revo_agent_runner.agents import AgentSpec
from revo_agent_runner.event_log import RunLog
from revo_agent_runner.model import ModelClient, ModelReply
from revo_agent_runner.replay import CONTEXT_STEP, call_key
from revo_agent_runner.report import lint_report, render_lint_report
from revo_agent_runner.tools import TOOLS, ToolContext, ToolError, ToolSpec
from revo_agent_runner.tools.memory import MAX_QUERY_CHARS, NO_MEMORIES
from revo_contracts import subjects
from revo_contracts.inference import ChatMessage, ChatRequest, Usage
from revo_contracts.runs import (
    AssistantMessage,
    ModelCalled,
    RunFailed,
    RunFinished,
    RunSubmit,
    ToolCalled,
    ToolResult,
    WaitingForInput,
)
from revo_core.bus import Bus
from revo_core.errors import BusUnavailable, InvalidRequest, ServiceError
from revo_core.logging import get_logger
from revo_core.tracing import internal_span

log = get_logger("revo.agent_runner.loop")

STUCK_REPEATS = 3
# A run guard's code (RunFailed.code) with OpenAI's name for it.
CONTEXT_LENGTH_EXCEEDED = "context_length_exceeded"
INTERRUPTED = (
    "not repeated: the runner executing this call stopped before its result was recorded, "
    "and the call may already have had its effect"
)


class RunStop(Exception):
    """Ends the run as failed with a code and a reason a person can act on."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass
class ParsedCall:
    spec: ToolSpec
    arguments: dict[str, Any]
    args: Any
    # The model reply it came from (None for the agent's own opening calls).
    reply: ModelReply | None = None


@dataclass
class RunContext:
    submit: RunSubmit
    agent: AgentSpec
    log: RunLog
    model: ModelClient
    workspace: Path | None
    history: list[ChatMessage] = field(default_factory=list)
    # Answers to the agent's questions: those recorded before this attempt, then live ones.
    known_answers: list[str] = field(default_factory=list)
    live_answers: asyncio.Queue[str] = field(default_factory=asyncio.Queue)
    prompt_budget_chars: int = 6000
    max_tool_output_chars: int = 16_000
    # For tools that ask other services (memory); None where there is none to ask.
    bus: Bus | None = None
    memory_timeout_s: float = 5.0


class AgentLoop:
    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.submit = ctx.submit
        self.agent = ctx.agent
        self.log = ctx.log
        self.state = ctx.log.state
        self.uses_tools = ctx.agent.uses_tools(ctx.workspace is not None)
        self.max_steps = min(ctx.submit.limits.max_steps, ctx.agent.max_steps or 10**6)
        self.tokens_subject = subjects.runs_tokens(ctx.submit.tenant, ctx.submit.run_id)
        # Characters of conversation the model gets; set from its context window at the
        # first call (0: not known yet).
        self.budget_chars = 0
        # The tools offered at the current step.
        self.offered: list[str] = ctx.agent.tools
        self.recall_call_id = f"{ctx.submit.run_id}-m1"

    async def run(self) -> None:
        """Execute until the run's last event; failures become a `failed` event."""
        try:
            await self._execute()
        except RunStop as stop:
            await self.log.emit(RunFailed, code=stop.code, reason=stop.reason)
        except ServiceError as exc:
            # A service's typed answer is final for this run: running it again on another
            # replica would get the same answer (and a crash would be retried until gave_up).
            log.warning("a service refused the run", run_id=self.submit.run_id, error=str(exc))
            await self.log.emit(RunFailed, code=str(exc.code), reason=str(exc))

    async def _execute(self) -> None:
        if not prompting.input_messages(self.submit):
            raise RunStop("invalid_request", "the run has neither a task nor user messages")
        await self._finish_pending_calls()
        await self._opening_calls()
        await self._recall_memories()
        if not self.uses_tools:
            await self._chat_step()
            return
        while not self.state.ended:
            await self._tool_step()

    # -- plain chat ----------------------------------------------------------------------

    async def _chat_step(self) -> None:
        step = self._next_step()
        reply = await self._ask_model(step, tools=False)
        await self._finish(reply.content, cut=reply.finish_reason == "length")

    # -- tool use ------------------------------------------------------------------------

    async def _tool_step(self) -> None:
        step = self._next_step()
        call = await self._next_call(step)
        if call.spec.terminal:
            answer, cut = prompting.cut_answer(call.args.answer, call.reply, self._answer_limit())
            await self._finish(answer, cut=cut)
            return
        key = call_key(call.spec.name, call.arguments)
        if self.state.call_counts[key] >= STUCK_REPEATS - 1:
            raise RunStop(
                "stuck_loop",
                f"the same call was asked for {STUCK_REPEATS} times: {key[:300]}",
            )
        await self._call_tool(step, f"{self.submit.run_id}-s{step}", call)

    async def _next_call(self, step: int) -> ParsedCall:
        """The model's next call; an invalid one is shown back to the model once."""
        self.offered = self._offered_tools(step)
        reply = await self._ask_model(step, tools=True)
        parsed = self._parse_call(reply)
        if isinstance(parsed, ParsedCall):
            return parsed
        correction = [
            ChatMessage(role="assistant", content=reply.content),
            ChatMessage(
                role="user",
                content=f"That was not a valid tool call: {parsed}. "
                "Answer with exactly one valid call.",
            ),
        ]
        reply = await self._ask_model(step, tools=True, retry=True, extra=correction)
        second = self._parse_call(reply)
        if isinstance(second, ParsedCall):
            return second
        raise RunStop(
            "invalid_tool_call",
            f"step {step}: the model's reply was not a valid tool call, twice: {second}",
        )

    def _parse_call(self, reply: ModelReply) -> ParsedCall | str:
        """A ParsedCall, or what is wrong with the reply (said so the model can fix it)."""
        if reply.tool_calls:
            name = reply.tool_calls[0].function.name
            raw = reply.tool_calls[0].function.arguments
        else:
            try:
                decoded = json.loads(reply.content)
                name, raw = decoded["name"], decoded.get("arguments", {})
            except (ValueError, KeyError, TypeError):
                cut = (
                    " (it was cut off at the token limit)"
                    if reply.finish_reason == "length"
                    else ""
                )
                return (
                    f'the reply is not JSON of the form {{"name": ..., "arguments": {{...}}}}{cut}'
                )
        offered = self.offered
        if name not in offered:
            return f"unknown tool {name!r}; the tools are {', '.join(offered)}"
        try:
            arguments = json.loads(raw) if isinstance(raw, str) else raw
        except ValueError:
            return f"the arguments of {name} are not JSON"
        if not isinstance(arguments, dict):
            return f"the arguments of {name} must be a JSON object"
        spec = TOOLS[name]
        try:
            return ParsedCall(spec, arguments, spec.decode_args(arguments), reply)
        except ToolError as exc:
            return str(exc)

    async def _call_tool(self, step: int, call_id: str, call: ParsedCall) -> None:
        await self.log.emit(
            ToolCalled, step=step, call_id=call_id, tool=call.spec.name, arguments=call.arguments
        )
        if call.spec.side_effects:
            # Recorded before it acts: a resumed run must know this call may have happened.
            await self.log.flush()
        if call.spec.name == "ask_user":
            await self._wait_for_answer(step, call_id, call.args.question)
            return
        await self._run_tool(step, call_id, call.spec, call.args)

    def _tool_context(self, call_id: str) -> ToolContext:
        workspace = self.submit.workspace
        return ToolContext(
            workspace=self.ctx.workspace or Path("."),
            run_id=self.submit.run_id,
            tenant=self.submit.tenant,
            call_id=call_id,
            agent=self.agent.name,
            user=self.submit.user,
            # The run's repository even where no checkout was made (a plain chat about it).
            repository=workspace.repo if workspace is not None else None,
            bus=self.ctx.bus,
            request_timeout_s=self.ctx.memory_timeout_s,
        )

    async def _run_tool(self, step: int, call_id: str, spec: ToolSpec, args: Any) -> None:
        honour_cancel()
        ctx = self._tool_context(call_id)
        with internal_span(
            f"tool {spec.name}", {"revo.run_id": self.submit.run_id, "revo.tool": spec.name}
        ) as span:
            try:
                output, error = await spec.call(ctx, args), None
            except ToolError as exc:
                output, error = "", str(exc)
            except Exception as exc:  # a bug in a tool must not end the run without a word
                log.exception("tool crashed", tool=spec.name, run_id=self.submit.run_id)
                output, error = (
                    "",
                    f"internal error in {spec.name}: {exc.__class__.__name__}: {exc}",
                )
            span.set_attribute("revo.tool.ok", error is None)
        metrics.TOOL_CALLS.labels(spec.name, "ok" if error is None else "error").inc()
        await self.log.emit(
            ToolResult,
            step=step,
            call_id=call_id,
            ok=error is None,
            output=output[: self.ctx.max_tool_output_chars],
            error=error,
        )

    async def _wait_for_answer(self, step: int, call_id: str, question: str) -> None:
        if self.state.status != "waiting":
            await self.log.emit(WaitingForInput, question=question)
        index = self.state.questions_answered
        while len(self.ctx.known_answers) <= index:
            self.ctx.known_answers.append(await self.ctx.live_answers.get())
        await self.log.emit(
            ToolResult, step=step, call_id=call_id, ok=True, output=self.ctx.known_answers[index]
        )

    # -- resuming ------------------------------------------------------------------------

    async def _finish_pending_calls(self) -> None:
        """Calls the previous runner recorded but did not finish."""
        for called in list(self.state.pending.values()):
            spec = TOOLS.get(called.tool)
            if called.tool == "ask_user":
                await self._wait_for_answer(
                    called.step, called.call_id, called.arguments.get("question", "")
                )
            elif spec is None or spec.side_effects:
                await self.log.emit(
                    ToolResult,
                    step=called.step,
                    call_id=called.call_id,
                    ok=False,
                    error=INTERRUPTED,
                )
            else:
                await self._run_tool(
                    called.step, called.call_id, spec, spec.decode_args(called.arguments)
                )

    async def _opening_calls(self) -> None:
        for index, opening in enumerate(self.agent.opening, start=1):
            call_id = f"{self.submit.run_id}-o{index}"
            if call_id in self.state.results:
                continue
            spec = TOOLS[opening.tool]
            call = ParsedCall(spec, opening.arguments, spec.decode_args(opening.arguments))
            await self._call_tool(index, call_id, call)

    async def _recall_memories(self) -> None:
        """The agent's recall before its first step, recorded as a `recall` call at the
        context step: what it finds goes into the system prompt. When memory is out of
        reach the failed result says the recall was skipped, and the run goes on without."""
        settings = self.agent.recall
        call_id = self.recall_call_id
        if settings is None or call_id in self.state.calls:
            return  # made before this attempt (one left pending was rerun above)
        query = prompting.latest_user_text(self.submit)[:MAX_QUERY_CHARS].strip()
        if not query:
            return
        arguments: dict[str, Any] = {
            "query": query,
            "top_k": settings.top_k,
            "min_score": settings.min_score,
            "token_budget": settings.token_budget,
        }
        if settings.kinds:
            arguments["kinds"] = list(settings.kinds)
        spec = TOOLS["recall"]
        call = ParsedCall(spec, arguments, spec.decode_args(arguments))
        await self._call_tool(CONTEXT_STEP, call_id, call)

    def _recalled(self) -> str | None:
        """What the recall before the first step found, for the system prompt."""
        result = self.state.results.get(self.recall_call_id)
        if result is None or not result.ok or result.output.startswith(NO_MEMORIES):
            return None
        return result.output

    # -- model calls and limits ----------------------------------------------------------

    def _next_step(self) -> int:
        step = self.state.steps + 1
        if step > self.max_steps:
            raise RunStop(
                "limit_exceeded", f"max_steps: {self.max_steps} steps taken without a final answer"
            )
        self._check_tokens()
        return step

    def _check_tokens(self) -> None:
        limit = self.submit.limits.max_tokens
        if self.state.total_tokens >= limit:
            raise RunStop(
                "limit_exceeded", f"max_tokens: {self.state.total_tokens} tokens used of {limit}"
            )

    def _messages(self, extra: list[ChatMessage]) -> list[ChatMessage]:
        messages = [
            prompting.system_message(
                self.agent, self.submit, self.ctx.workspace is not None, self._recalled()
            ),
            *self.ctx.history,
            *prompting.input_messages(self.submit),
            *self.state.conversation,
            *extra,
        ]
        return prompting.fit(messages, self.budget_chars)

    async def _ask_model(
        self,
        step: int,
        tools: bool,
        retry: bool = False,
        extra: list[ChatMessage] | None = None,
    ) -> ModelReply:
        honour_cancel()
        if self.budget_chars == 0:
            self.budget_chars = await self.ctx.model.prompt_budget_chars(
                self.agent.model, self.agent.max_tokens_per_step, self.ctx.prompt_budget_chars
            )
        try:
            return await self._call_model(step, tools, retry, extra or [])
        except InvalidRequest as exc:
            shrunk = prompting.shrunk_budget(
                self.budget_chars, exc.details, self._max_tokens(answering=not tools)
            )
            if shrunk is None:
                raise refused_by_model(exc) from None
            # The characters-per-token guess was off for this conversation: cut deeper once.
            self.budget_chars = shrunk
        try:
            return await self._call_model(step, tools, retry, extra or [])
        except InvalidRequest as exc:
            # What is never cut (the prompt, the question) is itself too long: a final answer.
            raise refused_by_model(exc) from None

    def _offered_tools(self, step: int) -> list[str]:
        """The agent's tools, or only final_answer once it has had `answer_after` steps."""
        model_steps = step - 1 - len(self.agent.opening)
        if self.agent.answer_after is not None and model_steps >= self.agent.answer_after:
            return ["final_answer"]
        return self.agent.tools

    def _max_tokens(self, answering: bool) -> int:
        """Tokens the next model call may write: the agent's step limit within what the run
        has left, and, for the step that writes the answer itself, the run's answer limit."""
        remaining = self.submit.limits.max_tokens - self.state.total_tokens
        limit = min(self.agent.max_tokens_per_step, remaining)
        if answering:
            limit = min(limit, self._answer_limit() or limit)
        return max(1, limit)

    def _answer_limit(self) -> int | None:
        return self.submit.answer_max_tokens

    async def _call_model(
        self, step: int, tools: bool, retry: bool, extra: list[ChatMessage]
    ) -> ModelReply:
        suffix = "-r" if retry else ""
        request = ChatRequest(
            messages=self._messages(extra),
            tenant=self.submit.tenant,
            request_id=f"{self.submit.run_id}-s{step}-a{self.state.attempts}{suffix}",
            model=self.agent.model,
            max_tokens=self._max_tokens(answering=not tools),
            temperature=self.agent.temperature,
            tools=prompting.tool_definitions(self.offered) if tools else [],
            tool_choice="required" if tools else "auto",
            run_id=self.submit.run_id,
        )
        try:
            reply = await self.ctx.model.call(request, self.tokens_subject, step)
        except InvalidRequest:
            metrics.MODEL_CALLS.labels(self.agent.name, "invalid_request").inc()
            raise
        except ServiceError as exc:
            metrics.MODEL_CALLS.labels(self.agent.name, exc.code).inc()
            raise RunStop(str(exc.code), f"inference: {exc}") from None
        except BusUnavailable as exc:
            metrics.MODEL_CALLS.labels(self.agent.name, "unavailable").inc()
            raise RunStop("upstream_error", f"inference: {exc}") from None
        metrics.MODEL_CALLS.labels(self.agent.name, "ok").inc()
        await self.log.emit(
            ModelCalled,
            step=step,
            model=reply.model,
            request_id=request.request_id,
            usage=reply.usage,
        )
        self._check_tokens()
        return reply

    # -- the end -------------------------------------------------------------------------

    async def _finish(self, answer: str, cut: bool = False) -> None:
        data: dict[str, Any] = {}
        if self.agent.report == "lint_findings":
            data = lint_report(self.state)
            answer = render_lint_report(answer, data)
        await self.log.emit(AssistantMessage, agent=self.agent.name, content=answer)
        usage = Usage(
            prompt_tokens=self.state.prompt_tokens,
            completion_tokens=self.state.completion_tokens,
            total_tokens=self.state.total_tokens,
        )
        finish_reason = "length" if cut else "stop"
        await self.log.emit(
            RunFinished, answer=answer, usage=usage, data=data, finish_reason=finish_reason
        )


def refused_by_model(exc: InvalidRequest) -> RunStop:
    """The run's end when inference refused a request: `context_length_exceeded` (OpenAI's
    code, which the gateway answers as such) when the prompt did not fit even cut down."""
    context, prompt = exc.details.get("max_context"), exc.details.get("prompt_tokens")
    if isinstance(context, int) and isinstance(prompt, int):
        return RunStop(
            CONTEXT_LENGTH_EXCEEDED,
            f"the prompt does not fit the model's {context}-token context, even shortened "
            f"({prompt} prompt tokens): {exc.message}",
        )
    return RunStop(str(exc.code), f"inference: {exc}")


def wall_time_left(submit: RunSubmit, first_started_at: float | None) -> float:
    started = first_started_at or time.time()
    return submit.limits.wall_time_s - (time.time() - started)


def honour_cancel() -> None:
    """Stop here if this run's task was cancelled and the cancel got lost on the way.

    Python 3.11's `asyncio.wait_for` (under nats-py's request) returns the reply instead of
    raising when the cancel and the reply arrive in the same turn; the task stays marked
    as cancelling, so each step checks the mark before it asks the model or runs a tool.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError()
