"""One model call of a run: a streamed `inference.chat` request whose deltas are forwarded
to `runs.tokens.<tenant>.<run>` as they arrive."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import msgspec

from revo_agent_runner.prompting import budget_for
from revo_contracts import subjects
from revo_contracts.inference import (
    ChatChunk,
    ChatRequest,
    ModelsRequest,
    ModelsResponse,
    ToolCall,
    Usage,
)
from revo_contracts.runs import TokenDelta
from revo_core.bus import Bus
from revo_core.errors import BusUnavailable, Overloaded, RequestTimeout, ServiceError
from revo_core.logging import get_logger
from revo_core.streaming import stream_request

log = get_logger("revo.agent_runner.model")

# Errors worth a second try after a pause: nobody serving yet, busy, or slow.
_TRANSIENT = (BusUnavailable, Overloaded, RequestTimeout)
_RETRY_DELAYS_S = (0.5, 1.0, 2.0)
_token_encoder = msgspec.json.Encoder()


@dataclass
class ModelReply:
    model: str = ""
    content: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    finish_reason: str | None = None


class ModelClient:
    def __init__(self, bus: Bus, subject: str = subjects.INFERENCE_CHAT) -> None:
        self.bus = bus
        self.subject = subject
        # Model name or alias -> context window in tokens, from `inference.models`.
        self._windows: dict[str, int] = {}
        self._windows_checked_at = 0.0

    async def prompt_budget_chars(self, model: str, max_tokens: int, default: int) -> int:
        """How much conversation fits the model's context, from what inference says of it;
        `default` when inference does not say (not up yet, or a server without models)."""
        window = await self._context_window(model)
        return budget_for(window, max_tokens) if window else default

    async def _context_window(self, model: str) -> int | None:
        if model not in self._windows and time.monotonic() - self._windows_checked_at > 30:
            self._windows_checked_at = time.monotonic()
            try:
                listing = await self.bus.request(
                    subjects.INFERENCE_MODELS, ModelsRequest(), ModelsResponse, timeout=2.0
                )
            except (ServiceError, BusUnavailable) as exc:
                log.info("model list unavailable; default prompt budget", error=str(exc))
                return None
            for info in listing.models:
                if info.kind == "chat" and info.max_context:
                    for name in (info.name, *info.aliases):
                        self._windows.setdefault(name, info.max_context)
        return self._windows.get(model)

    async def call(self, request: ChatRequest, tokens_subject: str, step: int) -> ModelReply:
        for delay in (*_RETRY_DELAYS_S, None):
            try:
                return await self._call_once(request, tokens_subject, step)
            except _TRANSIENT as exc:
                if delay is None:
                    raise
                log.warning("model call failed, retrying", error=str(exc), delay_s=delay)
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def _call_once(self, request: ChatRequest, tokens_subject: str, step: int) -> ModelReply:
        reply = ModelReply(model=request.model)
        kind = "tool_call" if request.tool_choice == "required" and request.tools else "text"
        parts: list[str] = []
        async with stream_request(self.bus, self.subject, request, ChatChunk) as chunks:
            async for chunk in chunks:
                reply.model = chunk.model
                if chunk.delta:
                    parts.append(chunk.delta)
                    delta = TokenDelta(
                        run_id=request.run_id or "", step=step, delta=chunk.delta, kind=kind
                    )
                    await self.bus.nc.publish(tokens_subject, _token_encoder.encode(delta))
                if chunk.usage is not None:
                    reply.usage = chunk.usage
                if chunk.tool_calls:
                    reply.tool_calls = chunk.tool_calls
                if chunk.finish_reason:
                    reply.finish_reason = chunk.finish_reason
        reply.content = "".join(parts)
        return reply
