"""The inference endpoints: `inference.chat` (streamed), `inference.embed`, `inference.models`."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import aclosing

import structlog
from opentelemetry import trace
from opentelemetry.trace import Span
from vllm.exceptions import VLLMServerError
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
from revo_inference.cloud import CloudCaller
from revo_inference.config import RoutingSpec
from revo_inference.engine import LocalChatEngine
from revo_inference.registry import ModelRegistry
from revo_inference.router import CLOUD_MODEL, FAILED, LOCAL, Route, Router
from revo_inference.tally import Tally
from revo_inference.usage import UsagePublisher


class InferenceHandlers:
    def __init__(
        self,
        registry: ModelRegistry,
        usage: UsagePublisher,
        router: Router | None = None,
        cloud: CloudCaller | None = None,
    ) -> None:
        self._registry = registry
        self._usage = usage
        # Without a router: local only, as with no provider configured.
        self._router = router or Router(registry, [], RoutingSpec())
        self._cloud = cloud

    async def chat(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        structlog.contextvars.bind_contextvars(
            tenant=request.tenant, request_id=request.request_id, run_id=request.run_id
        )
        span = trace.get_current_span()
        span.set_attributes({"revo.tenant": request.tenant, "gen_ai.request.model": request.model})
        route = self._router.route(request.model)
        params = prompts.sampling_params(request)  # bad input is refused wherever it would run
        local = self._local_prompt(route, request)
        prompt_tokens = len(local[1]) if local else estimate_tokens(request)
        tally = Tally(route.local.name if route.local else route.requested, prompt_tokens)
        try:
            async with aclosing(self._answer(request, route, local, params, tally)) as chunks:
                async for chunk in chunks:
                    yield chunk
        except BaseException as exc:
            tally.stopped_by(exc)
            raise
        finally:
            self._finish(span, request, route, tally)

    def _local_prompt(
        self, route: Route, request: ChatRequest
    ) -> tuple[LocalChatEngine, list[int]] | None:
        """The local engine and the prompt's tokens, while the local model may serve."""
        if route.reason != LOCAL or route.local is None:
            return None
        engine = self._registry.chat[route.local.name]
        prompt_ids = engine.render_prompt(prompts.engine_messages(request))
        self._router.check_context(route, len(prompt_ids), request.max_tokens)
        return engine, prompt_ids

    async def _answer(
        self,
        request: ChatRequest,
        route: Route,
        local: tuple[LocalChatEngine, list[int]] | None,
        params,
        tally: Tally,
    ) -> AsyncIterator[ChatChunk]:
        if local is not None and route.reason == LOCAL:
            engine, prompt_ids = local
            async with aclosing(
                self._local(request, route, engine, prompt_ids, params, tally)
            ) as chunks:
                async for chunk in chunks:
                    yield chunk
            if route.reason == LOCAL:
                return
        allowed = self._router.cloud_allowed(request.tenant)
        if self._cloud is None or not route.cloud or not allowed:
            raise self._router.refuse(route, request.tenant)
        async with aclosing(self._cloud.chat(request, route, tally)) as chunks:
            async for chunk in chunks:
                yield chunk

    async def _local(
        self,
        request: ChatRequest,
        route: Route,
        engine: LocalChatEngine,
        prompt_ids: list[int],
        params,
        tally: Tally,
    ) -> AsyncIterator[ChatChunk]:
        """The local engine's answer; a failure before its first chunk spills to the cloud
        when there is one (`route.reason` becomes local_failed)."""
        try:
            async with aclosing(_engine_outputs(engine, request, prompt_ids, params)) as outputs:
                async for output in outputs:
                    chunk = tally.chunk(request, output)
                    if chunk is not None:
                        yield chunk
        except UpstreamError as exc:
            if tally.sent_anything or not route.cloud:
                raise
            tally.ran_locally = True
            route.spill(FAILED, f"the local model {engine.spec.name} failed: {exc.message}")
            return
        if tally.ttft_s is not None:
            self._router.observe_ttft(engine.spec.name, tally.ttft_s)

    def _finish(self, span: Span, request: ChatRequest, route: Route, tally: Tally) -> None:
        tally.route_reason = route.reason
        ran_where = "cloud" if tally.provider != "local" else "local"
        _describe_route(span, route, tally)
        if route.reason not in (LOCAL, CLOUD_MODEL):
            metrics.FALLBACKS.labels(route.reason).inc()
        if ran_where == "local" and route.reason != LOCAL and not tally.ran_locally:
            return  # refused before any model ran: nothing to count or bill
        metrics.count_route(ran_where, route.reason)
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
        return ModelsResponse(models=self._registry.infos() + self._router.cloud_infos())


def _describe_route(span: Span, route: Route, tally: Tally) -> None:
    span.set_attributes(
        {
            "gen_ai.response.model": tally.model,
            "revo.route.reason": route.reason,
            "revo.route.provider": tally.provider,
        }
    )
    if route.detail:
        span.set_attribute("revo.route.detail", route.detail)


def estimate_tokens(request: ChatRequest) -> int:
    """Prompt tokens without a local tokenizer: ~4 characters a token, plus the framing."""
    chars = sum(len(m.content) for m in request.messages)
    return chars // 4 + 4 * len(request.messages)


def _describe_usage(span: Span, event: UsageEvent) -> None:
    span.set_attributes(
        {
            "gen_ai.usage.input_tokens": event.prompt_tokens,
            "gen_ai.usage.output_tokens": event.completion_tokens,
            "revo.finish_reason": event.finish_reason or "",
        }
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
    except (RuntimeError, VLLMServerError) as exc:  # e.g. EngineDeadError: its process died
        raise UpstreamError(f"local engine failed: {exc!r}") from None
