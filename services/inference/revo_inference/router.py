"""The local-first router: which model serves a request, and why.

A request names a model or an alias. Its candidates are the local models of that name
(first) and the cloud models of that name or listed as the local model's `fallback`. The
local model serves unless it cannot; then the reason it cannot is what the request
carries to the cloud (usage event `route_reason`, span attribute `revo.route.reason`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from revo_contracts.inference import ModelInfo
from revo_core.errors import Forbidden, InvalidRequest, NotFound, Overloaded, UpstreamError
from revo_inference.config import CloudModelSpec, ModelSpec, RoutingSpec
from revo_inference.engine import LocalChatEngine
from revo_inference.providers import CloudProvider
from revo_inference.registry import ModelRegistry

LOCAL = "local"
# The requested model exists only in the cloud.
CLOUD_MODEL = "cloud_model"
NOT_LOADED = "local_not_loaded"
UNHEALTHY = "local_unhealthy"
QUEUE = "local_queue"
CONTEXT = "context_exceeded"
FAILED = "local_failed"


@dataclass
class CloudCandidate:
    provider: CloudProvider
    model: CloudModelSpec


@dataclass
class Route:
    """Where a request may run. `reason` is "local" while the local model may serve it."""

    requested: str
    local: ModelSpec | None
    cloud: list[CloudCandidate]
    reason: str = LOCAL
    detail: str = ""
    details: dict[str, object] = field(default_factory=dict)

    def spill(self, reason: str, detail: str, **details: object) -> None:
        self.reason, self.detail, self.details = reason, detail, details


class Router:
    def __init__(
        self, registry: ModelRegistry, providers: list[CloudProvider], routing: RoutingSpec
    ) -> None:
        self._registry = registry
        self._providers = providers
        self.routing = routing
        # Recent time to first token per local model (EWMA, seconds): the queue estimate.
        self._ttft: dict[str, float] = {}

    def route(self, requested: str) -> Route:
        local = self._registry.chat_spec(requested)
        cloud = self._cloud_candidates(requested, local)
        if local is None and not cloud:
            available = sorted(set(self._registry.chat_names()) | self.cloud_names())
            raise NotFound(f"unknown chat model {requested!r}", {"available": available})
        route = Route(requested=requested, local=local, cloud=cloud)
        if local is None:
            route.spill(CLOUD_MODEL, f"{requested!r} is served by cloud providers only")
        else:
            self._check_engine(route, local)
        return route

    def cloud_infos(self) -> list[ModelInfo]:
        return [
            ModelInfo(
                name=m.name,
                kind="chat",
                provider=p.name,
                max_context=m.max_context,
                loaded=not p.cooling_down(),
                aliases=list(m.aliases),
            )
            for p in self._providers
            for m in p.spec.models
        ]

    def cloud_names(self) -> set[str]:
        return {m.name for p in self._providers for m in p.spec.models}

    def _cloud_candidates(self, requested: str, local: ModelSpec | None) -> list[CloudCandidate]:
        wanted = [requested, *(local.fallback if local else [])]
        found: list[CloudCandidate] = []
        for name in wanted:
            for provider in self._providers:
                for model in provider.spec.models:
                    if name in (model.name, *model.aliases):
                        found.append(CloudCandidate(provider, model))
        unique: dict[tuple[str, str], CloudCandidate] = {}
        for c in found:
            unique.setdefault((c.provider.name, c.model.name), c)
        return list(unique.values())

    def _check_engine(self, route: Route, spec: ModelSpec) -> None:
        engine = self._registry.chat.get(spec.name)
        if engine is None:
            route.spill(NOT_LOADED, f"the local model {spec.name} is not loaded on this replica")
        elif not engine.healthy:
            route.spill(UNHEALTHY, f"the local model {spec.name} is unhealthy")
        else:
            self._check_queue(route, engine)

    def _check_queue(self, route: Route, engine: LocalChatEngine) -> None:
        target = self.routing.ttft_target_ms
        if target is None:
            return
        estimate = self.estimated_ttft_ms(engine)
        if estimate is not None and estimate > target:
            route.spill(
                QUEUE,
                f"{engine.unfinished_requests} requests queue on {engine.spec.name}: first "
                f"token expected in ~{estimate:.0f} ms, over the {target:.0f} ms target",
                estimated_ttft_ms=round(estimate),
            )

    def estimated_ttft_ms(self, engine: LocalChatEngine) -> float | None:
        recent = self._ttft.get(engine.spec.name)
        if recent is None:
            return None
        return 1000 * recent * queue_factor(engine.unfinished_requests, engine.spec.batch_slots)

    def observe_ttft(self, model: str, seconds: float) -> None:
        before = self._ttft.get(model)
        self._ttft[model] = seconds if before is None else 0.8 * before + 0.2 * seconds

    def check_context(self, route: Route, prompt_tokens: int, max_tokens: int) -> None:
        assert route.local is not None
        limit = route.local.max_context
        if max_tokens >= limit or prompt_tokens + max_tokens > limit:
            route.spill(
                CONTEXT,
                f"max_tokens {max_tokens} + prompt {prompt_tokens} tokens exceeds the "
                f"{limit}-token context of {route.local.name}",
                field="max_tokens",
                max_context=limit,
                prompt_tokens=prompt_tokens,
            )

    def cloud_allowed(self, tenant: str) -> bool:
        return self.routing.policy(tenant).cloud == "allow"

    def refuse(self, route: Route, tenant: str) -> Exception:
        """The error for a request the local model cannot serve and the cloud may not."""
        details = {**route.details, "route_reason": route.reason}
        if route.cloud and not self.cloud_allowed(tenant):
            return Forbidden(
                f"{route.detail}, and tenant {tenant!r} may not use cloud models", details
            )
        where = "no cloud provider is configured" if not self._providers else "no cloud fallback"
        message = f"{route.detail}; {where} for {route.requested!r}"
        if route.reason == CONTEXT:
            return InvalidRequest(message, details)
        if route.reason == QUEUE:
            return Overloaded(message, details)
        return UpstreamError(message, details)


def queue_factor(unfinished: int, slots: int) -> float:
    """How much later than recently the first token comes: requests beyond the engine's
    batch slots wait for running ones, a batch's worth of time per `slots` of them."""
    return 1.0 + max(0, unfinished + 1 - slots) / slots
