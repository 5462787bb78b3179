"""What one chat request produced: the chunks sent, the tokens, the usage event."""

from __future__ import annotations

import asyncio
import time

from vllm.outputs import RequestOutput

from revo_contracts.inference import ChatChunk, ChatRequest, Usage
from revo_contracts.usage import UsageEvent
from revo_inference import metrics, prompts
from revo_inference.providers import CloudDelta


class Tally:
    """Turns engine outputs into chunks and keeps what the usage event needs."""

    def __init__(self, model: str, prompt_tokens: int) -> None:
        self.model = model
        self.provider = "local"
        self.route_reason = "local"
        self.prompt_tokens = prompt_tokens
        self.completion_tokens = 0
        self.index = 0
        self.text: list[str] = []
        self.finish_reason: str | None = None
        self.started = time.perf_counter()
        self.first_token_at: float | None = None
        self.tool_calls: list = []
        self.cloud_usage: Usage | None = None
        # The local engine ran (and failed) before the request went to the cloud.
        self.ran_locally = False

    @property
    def sent_anything(self) -> bool:
        return self.index > 0

    def _first_token(self) -> None:
        if self.first_token_at is None:
            self.first_token_at = time.perf_counter()
            metrics.TTFT_SECONDS.labels(self.model).observe(self.first_token_at - self.started)

    @property
    def ttft_s(self) -> float | None:
        return None if self.first_token_at is None else self.first_token_at - self.started

    def switch_to_cloud(self, model: str, provider: str) -> None:
        """A new cloud attempt: nothing was sent by the one before (or it would not retry)."""
        self.model, self.provider = model, provider
        self.completion_tokens = 0
        self.started = time.perf_counter()
        self.first_token_at = None

    def cloud_chunk(self, request: ChatRequest, delta: CloudDelta) -> ChatChunk | None:
        """A chunk for a provider's text; its finish and usage wait for `cloud_last`."""
        self.cloud_usage = delta.usage or self.cloud_usage
        if delta.finish_reason is not None:
            self.finish_reason = delta.finish_reason
            self.tool_calls = delta.tool_calls
        if not delta.text:
            return None
        self._first_token()
        # Providers stream about one token per chunk; their usage figure replaces this.
        self.completion_tokens += 1
        self.text.append(delta.text)
        return self._next_chunk(request, delta.text)

    def cloud_last(self, request: ChatRequest) -> ChatChunk:
        if self.cloud_usage is not None:
            self.prompt_tokens = self.cloud_usage.prompt_tokens or self.prompt_tokens
            self.completion_tokens = self.cloud_usage.completion_tokens
        chunk = self._next_chunk(request, "")
        self.finish_reason = chunk.finish_reason = self.finish_reason or "stop"
        chunk.tool_calls = self.tool_calls
        chunk.usage = Usage(
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            total_tokens=self.prompt_tokens + self.completion_tokens,
        )
        return chunk

    def _next_chunk(self, request: ChatRequest, text: str) -> ChatChunk:
        chunk = ChatChunk(
            request_id=request.request_id,
            model=self.model,
            index=self.index,
            delta=text,
            provider=self.provider,
        )
        self.index += 1
        return chunk

    def chunk(self, request: ChatRequest, output: RequestOutput) -> ChatChunk | None:
        completion = output.outputs[0]
        self.completion_tokens += len(completion.token_ids)
        if completion.token_ids:
            self._first_token()
        if not output.finished and not completion.text:
            return None
        self.text.append(completion.text)
        chunk = self._next_chunk(request, completion.text)
        if output.finished:
            self._finish(request, chunk, completion.finish_reason or "stop")
        return chunk

    def _finish(self, request: ChatRequest, chunk: ChatChunk, finish_reason: str) -> None:
        self._observe_rate()
        self.finish_reason = chunk.finish_reason = finish_reason
        chunk.usage = Usage(
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            total_tokens=self.prompt_tokens + self.completion_tokens,
        )
        if request.tools and request.tool_choice == "required" and finish_reason == "stop":
            call = prompts.parse_tool_call("".join(self.text), request.request_id)
            if call is not None:
                chunk.tool_calls = [call]
                self.finish_reason = chunk.finish_reason = "tool_calls"

    def _observe_rate(self) -> None:
        if self.first_token_at is None or self.completion_tokens < 2:
            return
        elapsed = time.perf_counter() - self.first_token_at
        if elapsed > 0:
            metrics.DECODE_TOKENS_PER_SECOND.labels(self.model).observe(
                (self.completion_tokens - 1) / elapsed
            )

    def stopped_by(self, exc: BaseException) -> None:
        if self.finish_reason is None:
            stopped = isinstance(exc, asyncio.CancelledError | GeneratorExit)
            self.finish_reason = "cancelled" if stopped else "error"

    def usage_event(self, request: ChatRequest) -> UsageEvent:
        now = time.perf_counter()
        metrics.PROMPT_TOKENS.labels(self.model).inc(self.prompt_tokens)
        metrics.COMPLETION_TOKENS.labels(self.model).inc(self.completion_tokens)
        ttft = None if self.first_token_at is None else (self.first_token_at - self.started) * 1000
        return UsageEvent(
            event_id=request.request_id,
            tenant=request.tenant,
            request_id=request.request_id,
            model=self.model,
            provider=self.provider,
            route_reason=self.route_reason,
            kind="chat",
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            duration_ms=(now - self.started) * 1000,
            ttft_ms=ttft,
            finish_reason=self.finish_reason,
            run_id=request.run_id,
        )
