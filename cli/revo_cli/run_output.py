"""How runs look in the terminal: one line per event, live printing, the list and the log."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import msgspec

from revo_contracts.runs import (
    AssistantMessage,
    ModelCalled,
    RunCancelled,
    RunDetail,
    RunFailed,
    RunFinished,
    RunQueued,
    RunStarted,
    RunSubmit,
    RunSummary,
    TokenDelta,
    ToolCalled,
    ToolResult,
    WaitingForInput,
)
from revo_core.runs import event_type

ARGUMENTS_WIDTH = 120
OUTPUT_WIDTH = 100
TASK_WIDTH = 40


def shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def first_line(text: str, width: int = OUTPUT_WIDTH) -> str:
    lines = text.strip().splitlines()
    more = " …" if len(lines) > 1 else ""
    return shorten(lines[0], width) + more if lines else ""


def call_text(tool: str, arguments: dict[str, Any]) -> str:
    args = ", ".join(f"{name}={json.dumps(value)}" for name, value in arguments.items())
    return shorten(f"{tool}({args})", ARGUMENTS_WIDTH)


def tokens_text(usage: Any) -> str:
    return f"{usage.total_tokens} tokens" if usage is not None else "tokens unknown"


def describe(event: Any) -> str:
    """One short line saying what the event means."""
    match event:
        case RunQueued(agent=agent):
            return f"queued for {agent}"
        case RunStarted(runner_id=runner, attempt=attempt):
            return f"started on runner {runner}, attempt {attempt}"
        case ModelCalled(step=step, model=model, usage=usage):
            return f"step {step} model call ({model}, {tokens_text(usage)})"
        case ToolCalled(tool=tool, arguments=arguments):
            return f"→ {call_text(tool, arguments)}"
        case ToolResult(ok=True, output=output):
            return f"← ok: {first_line(output)}"
        case ToolResult(error=error, output=output):
            return f"← error: {first_line(error or output)}"
        case AssistantMessage(agent=agent, content=content):
            return f"{agent}: {first_line(content)}"
        case WaitingForInput(question=question):
            return f"waiting for input: {question}"
        case RunFinished(usage=usage):
            return f"finished ({tokens_text(usage)})"
        case RunFailed(code=code, reason=reason):
            return f"failed [{code}]: {reason}"
        case RunCancelled(reason=reason):
            return f"cancelled: {reason}" if reason else "cancelled"
    return event_type(event)


def answer_hint(run_id: str) -> str:
    return f'  answer with: revo runs answer {run_id} "..."'


class LivePrinter:
    """Prints a run as it happens: the model's text inline, each event as one line.

    Tool-call tokens are JSON for the runner, not for people; the tool_called event
    says what was called."""

    def __init__(self, submit: RunSubmit) -> None:
        self.run_id = submit.run_id
        self.agent = submit.agent
        self.started = time.monotonic()
        self.steps = 0
        self.midline = False
        # The text of the latest step, so a finished answer is not printed twice.
        self.streamed = ""
        self.streamed_step = -1

    def header(self, tenant: str) -> None:
        self._line(f"run {self.run_id} ({self.agent}, tenant {tenant})")

    def show(self, item: Any) -> None:
        if isinstance(item, TokenDelta):
            self._token(item)
            return
        match item:
            case AssistantMessage():
                pass  # the same text as the finished answer, printed there
            case ModelCalled(step=step):
                self.steps = max(self.steps, step)
                self._line(describe(item))
            case WaitingForInput():
                self._line(describe(item))
                self._line(answer_hint(self.run_id))
            case RunFinished():
                self._finished(item)
            case RunFailed():
                self._line(describe(item), sys.stderr)
            case _:
                self._line(describe(item))

    def _token(self, delta: TokenDelta) -> None:
        if delta.kind != "text":
            return
        if delta.step != self.streamed_step:
            self.streamed, self.streamed_step = "", delta.step
        self.streamed += delta.delta
        self._write(delta.delta)

    def _finished(self, event: RunFinished) -> None:
        seen, answer = self.streamed.strip(), event.answer.strip()
        if seen and answer.startswith(seen):
            # Tokens and events travel apart: the last words may not have arrived yet.
            self._write(answer[len(seen) :])
        else:
            self._end_line()
            self._write(answer)
        steps = f"{self.steps} step{'s' if self.steps != 1 else ''}"
        elapsed = time.monotonic() - self.started
        self._line(f"finished · {tokens_text(event.usage)} · {steps} · {elapsed:.1f} s")

    def _write(self, text: str) -> None:
        if text:
            sys.stdout.write(text)
            sys.stdout.flush()
            self.midline = not text.endswith("\n")

    def _end_line(self) -> None:
        if self.midline:
            self._write("\n")

    def _line(self, text: str, stream: Any = None) -> None:
        self._end_line()
        print(text, file=stream or sys.stdout, flush=True)


class JsonPrinter:
    """Every event and token delta as one JSON line, for scripts."""

    def header(self, tenant: str) -> None:
        pass  # the queued event, the first line, carries the run id

    def show(self, item: Any) -> None:
        print(msgspec.json.encode(item).decode(), flush=True)


# -- lists and logs ------------------------------------------------------------------------


def ago(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit} ago"
    return f"{int(seconds)}s ago"


def duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    return f"{minutes // 60}h{minutes % 60:02d}m"


def run_duration(run: RunSummary, now: float) -> str:
    if run.started_at is None:
        return "-"
    return duration((run.ended_at or now) - run.started_at)


RUN_COLUMNS = ("RUN", "AGENT", "TENANT", "STATUS", "STEPS", "TOKENS", "AGE", "TOOK", "TASK")


def run_row(run: RunSummary, now: float) -> tuple[str, ...]:
    task = shorten((run.task or "").replace("\n", " "), TASK_WIDTH)
    return (
        run.run_id,
        run.agent,
        run.tenant,
        run.status,
        str(run.steps),
        str(run.total_tokens),
        ago(now - run.created_at),
        run_duration(run, now),
        task,
    )


def table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(map(len, column)) for column in zip(header, *rows, strict=True)]
    return [table_line(row, widths) for row in [header, *rows]]


def table_line(row: tuple[str, ...], widths: list[int]) -> str:
    return "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()


def runs_table(runs: list[RunSummary], now: float) -> list[str]:
    return table(RUN_COLUMNS, [run_row(run, now) for run in runs])


def clock(ts: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ts)) + f".{int(ts % 1 * 1000):03d}"


def summary_block(run: RunSummary, now: float) -> list[str]:
    lines = [
        f"run       {run.run_id}",
        f"agent     {run.agent} (tenant {run.tenant}"
        + (f", session {run.session_id})" if run.session_id else ")"),
        f"status    {run.status}: {run.steps} steps, {run.total_tokens} tokens, "
        f"{run.attempts} attempt(s)",
        f"created   {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(run.created_at))} "
        f"({ago(now - run.created_at)}), took {run_duration(run, now)}",
    ]
    if run.task:
        lines.append(f"task      {run.task}")
    if run.error_code:
        lines.append(f"error     [{run.error_code}] {run.error_reason or ''}")
    return lines


def event_line(event: Any) -> str:
    return f"{event.seq:>4}  {clock(event.ts)}  {event_type(event):<17}  {describe(event)}"


def detail_lines(detail: RunDetail, now: float) -> list[str]:
    lines = [*summary_block(detail.run, now), "", "events:"]
    lines += [event_line(event) for event in detail.events]
    answer = detail.run.answer
    if answer is None:
        answer = next((e.answer for e in detail.events if isinstance(e, RunFinished)), None)
    if answer is not None:
        lines += ["", "answer:", answer]
    return lines
