"""A scripted model: a real responder on `inference.chat` that plays back scripted replies.

For tests and benchmarks of what sits above inference (the agent loop, the gateway): it
speaks the same streamed protocol as the inference service, over real NATS, so the code
under test cannot tell it from the real thing except by its answers.

A script is a list of replies for one run, picked by how many tool results the request
already holds (so a resumed run gets the same reply for the same step); a retry request
(request id ending in "-r") takes the reply from `retries` instead.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from revo_contracts import subjects
from revo_contracts.inference import ChatChunk, ChatRequest, FunctionCall, ToolCall, Usage
from revo_core.bus import Bus
from revo_core.endpoints import Endpoints
from revo_core.errors import ServiceError, error_from_code

SCRIPTED_MODEL = "scripted"


@dataclass
class Reply:
    text: str = ""
    call: tuple[str, dict[str, Any]] | None = None
    delay_s: float = 0.0
    # The reply waits until the test sets this event (to hold a run mid-step).
    gate: asyncio.Event | None = None
    error: str | None = None
    error_details: dict[str, Any] = field(default_factory=dict)
    # With an error: how many calls fail before the reply is given (0: every call fails).
    error_times: int = 0
    _errors_given: int = 0
    usage: Usage = field(
        default_factory=lambda: Usage(prompt_tokens=50, completion_tokens=10, total_tokens=60)
    )


def call(name: str, **arguments: Any) -> Reply:
    return Reply(call=(name, arguments))


def text(content: str) -> Reply:
    return Reply(text=content)


@dataclass
class Script:
    replies: list[Reply]
    retries: dict[int, Reply] = field(default_factory=dict)
    # Used for any step past the end of `replies` (a model that never stops).
    forever: Reply | None = None


class ScriptedModel:
    def __init__(self, bus: Bus, default: Script | None = None) -> None:
        self.bus = bus
        self.scripts: dict[str, Script] = {}
        self.default = default
        self.requests: list[ChatRequest] = []
        self._endpoints: Endpoints | None = None

    async def start(self) -> ScriptedModel:
        self._endpoints = Endpoints(self.bus, "scripted_inference", max_in_flight=10_000)
        await self._endpoints.start()
        await self._endpoints.add_stream(
            "chat", subjects.INFERENCE_CHAT, ChatRequest, self._chat, subjects.INFERENCE_QUEUE_GROUP
        )
        return self

    async def stop(self) -> None:
        if self._endpoints is not None:
            await self._endpoints.stop(grace=1)

    def script(
        self,
        run_id: str,
        *replies: Reply,
        retries: dict[int, Reply] | None = None,
        forever: Reply | None = None,
    ) -> None:
        self.scripts[run_id] = Script(list(replies), retries or {}, forever)

    def requests_of(self, run_id: str) -> list[ChatRequest]:
        return [r for r in self.requests if r.run_id == run_id]

    async def _chat(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        self.requests.append(request)
        reply = self._pick(request)
        if reply.gate is not None:
            await reply.gate.wait()
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)
        if reply.error and (not reply.error_times or reply._errors_given < reply.error_times):
            reply._errors_given += 1
            error: ServiceError = error_from_code(reply.error, f"scripted {reply.error}")
            error.details = dict(reply.error_details)
            raise error
        for chunk in _chunks(request, reply):
            yield chunk

    def _pick(self, request: ChatRequest) -> Reply:
        script = self.scripts.get(request.run_id or "") or self.default
        if script is None:
            return text(f"no script for run {request.run_id}")
        step = sum(1 for m in request.messages if m.role == "tool")
        if request.request_id.endswith("-r") and step in script.retries:
            return script.retries[step]
        if step < len(script.replies):
            return script.replies[step]
        return script.forever or text("the script has ended")


def _chunks(request: ChatRequest, reply: Reply) -> list[ChatChunk]:
    base = {"request_id": request.request_id, "model": SCRIPTED_MODEL}
    if reply.call is not None:
        name, arguments = reply.call
        body = json.dumps({"name": name, "arguments": arguments})
        tool_call = ToolCall(
            id=f"call_{request.request_id}",
            function=FunctionCall(name=name, arguments=json.dumps(arguments)),
        )
        return [
            ChatChunk(
                **base,
                index=0,
                delta=body,
                finish_reason="tool_calls",
                usage=reply.usage,
                tool_calls=[tool_call],
            )
        ]
    # A word is a token here; like a real engine, it stops at the request's max_tokens.
    words = reply.text.split(" ")
    cut = len(words) > request.max_tokens
    words = words[: request.max_tokens]
    chunks = [ChatChunk(**base, index=i, delta=(" " if i else "") + w) for i, w in enumerate(words)]
    chunks[-1].finish_reason = "length" if cut else "stop"
    chunks[-1].usage = reply.usage
    return chunks
