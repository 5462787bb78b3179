"""The inference endpoints: `inference.chat` (streamed), `inference.embed`, `inference.models`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import aclosing

import structlog
from opentelemetry import trace
from opentelemetry.trace import Span
from vllm.outputs import RequestOutput

from revo_contracts.inference import (
    ChatChunk,
    ChatRequest,
    EmbedRequest,
    EmbedResponse,
    ModelsRequest,
    ModelsResponse,
    Usage,
)
from revo_contracts.usage import UsageEvent
from revo_core.errors import InvalidRequest, UpstreamError
from revo_inference import metrics, prompts
from revo_inference.engine import LocalChatEngine
from revo_inference.registry import ModelRegistry
from revo_inference.usage import UsagePublisher


class InferenceHandlers:
    def __init__(self, registry: ModelRegistry, usage: UsagePublisher) -> None:
        self._registry = registry
        self._usage = usage

    async def chat(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        structlog.contextvars.bind_contextvars(
            tenant=request.tenant, request_id=request.request_id, run_id=request.run_id
        )
        engine = self._registry.chat_engine(request.model)
        span = trace.get_current_span()
        _describe_request(span, request, engine)
        prompt_ids = engine.render_prompt(prompts.engine_messages(request))
        _check_context(engine, len(prompt_ids), request.max_tokens)
        params = prompts.sampling_params(request)
        tally = _Tally(engine.spec.name, len(prompt_ids))
        try:
            async with aclosing(_engine_outputs(engine, request, prompt_ids, params)) as outputs:
                async for output in outputs:
                    chunk = tally.chunk(request, output)
                    if chunk is not None:
                        yield chunk
        except BaseException as exc:
            tally.stopped_by(exc)
            raise
        finally:
            event = tally.usage_event(request)
            _describe_usage(span, event)
            self._usage.record(event)

    async def embed(self, request: EmbedRequest) -> EmbedResponse:
        embedder = self._registry.embedder(request.model)
        started = time.perf_counter()
        vectors, tokens = await embedder.embed(request.texts)
        self._usage.record(
            UsageEvent(
                event_id=request.request_id,
                tenant=request.tenant,
                request_id=request.request_id,
                model=embedder.spec.name,
                kind="embed",
                prompt_tokens=tokens,
                duration_ms=(time.perf_counter() - started) * 1000,
            )
        )
        return EmbedResponse(
            model=embedder.spec.name,
            dimensions=embedder.dimensions,
            embeddings=vectors,
            usage=Usage(prompt_tokens=tokens, total_tokens=tokens),
        )

    async def models(self, _: ModelsRequest) -> ModelsResponse:
        return ModelsResponse(models=self._registry.infos())


def _describe_request(span: Span, request: ChatRequest, engine: LocalChatEngine) -> None:
    span.set_attributes(
        {
            "revo.tenant": request.tenant,
            "gen_ai.request.model": request.model,
            "gen_ai.response.model": engine.spec.name,
            # The route taken and why; the local-first router (issue 5) adds other reasons.
            "revo.route.reason": "local",
        }
    )


def _describe_usage(span: Span, event: UsageEvent) -> None:
    span.set_attributes(
        {
            "gen_ai.usage.input_tokens": event.prompt_tokens,
            "gen_ai.usage.output_tokens": event.completion_tokens,
            "revo.finish_reason": event.finish_reason or "",
        }
    )


def _check_context(engine: LocalChatEngine, prompt_tokens: int, max_tokens: int) -> None:
    limit = engine.spec.max_context
    if max_tokens >= limit or prompt_tokens + max_tokens > limit:
        raise InvalidRequest(
            f"max_tokens {max_tokens} + prompt {prompt_tokens} tokens exceeds the "
            f"{limit}-token context of {engine.spec.name}",
            {"field": "max_tokens", "max_context": limit, "prompt_tokens": prompt_tokens},
        )


async def _engine_outputs(
    engine: LocalChatEngine, request: ChatRequest, prompt_ids: list[int], params
) -> AsyncIterator[RequestOutput]:
    """The engine's outputs, with its errors mapped onto the error contract."""
    try:
        async with aclosing(engine.generate(request.request_id, prompt_ids, params)) as outputs:
            async for output in outputs:
                yield output
    except ValueError as exc:  # vLLM's verdict on a request it refuses (e.g. bad schema)
        raise InvalidRequest(f"the engine refused the request: {exc}") from None
    except RuntimeError as exc:
        raise UpstreamError(f"local engine failed: {exc}") from None


class _Tally:
    """Turns engine outputs into chunks and keeps what the usage event needs."""

    def __init__(self, model: str, prompt_tokens: int) -> None:
        self.model = model
        self.prompt_tokens = prompt_tokens
        self.completion_tokens = 0
        self.index = 0
        self.text: list[str] = []
        self.finish_reason: str | None = None
        self.started = time.perf_counter()
        self.first_token_at: float | None = None

    def chunk(self, request: ChatRequest, output: RequestOutput) -> ChatChunk | None:
        completion = output.outputs[0]
        self.completion_tokens += len(completion.token_ids)
        if self.first_token_at is None and completion.token_ids:
            self.first_token_at = time.perf_counter()
            metrics.TTFT_SECONDS.labels(self.model).observe(self.first_token_at - self.started)
        if not output.finished and not completion.text:
            return None
        self.text.append(completion.text)
        chunk = ChatChunk(
            request_id=request.request_id, model=self.model, index=self.index, delta=completion.text
        )
        self.index += 1
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
            kind="chat",
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            duration_ms=(now - self.started) * 1000,
            ttft_ms=ttft,
            finish_reason=self.finish_reason,
            run_id=request.run_id,
        )
