"""The router's decisions that need no engine running: config, reasons, errors."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import aiohttp
import msgspec
import pytest

from revo_core.errors import Forbidden, NotFound, Overloaded, UpstreamError
from revo_inference.config import (
    CloudModelSpec,
    ConfigError,
    ModelSpec,
    ProviderSpec,
    RoutingSpec,
    TenantPolicy,
    load_models_config,
)
from revo_inference.providers import CloudProvider
from revo_inference.registry import ModelRegistry
from revo_inference.router import Router

BIG = ModelSpec(
    name="big-local", kind="chat", path="/nowhere", max_context=4096, load=False, aliases=["smart"]
)


@dataclass
class BusyEngine:
    """Stands in for a loaded engine: only what the router reads of one."""

    spec: ModelSpec
    unfinished_requests: int = 0
    healthy: bool = True


def registry_with(*engines: BusyEngine, unloaded: tuple[ModelSpec, ...] = ()) -> ModelRegistry:
    registry = ModelRegistry()
    for engine in engines:
        registry.chat[engine.spec.name] = engine  # type: ignore[assignment]
        registry._register(engine.spec)
    for spec in unloaded:
        registry.add_unloaded_chat(spec)
    return registry


async def test_a_model_not_loaded_without_a_provider_is_refused_with_why():
    router = Router(registry_with(unloaded=(BIG,)), [], RoutingSpec())

    route = router.route("smart")

    assert route.reason == "local_not_loaded"
    error = router.refuse(route, "acme")
    assert isinstance(error, UpstreamError)
    assert "not loaded" in error.message and "no cloud provider is configured" in error.message


async def test_an_unknown_model_lists_local_and_cloud_models():
    async with aiohttp.ClientSession() as session:
        provider = CloudProvider(
            ProviderSpec(name="p", base_url="http://x/v1", models=[CloudModelSpec(name="c1")]),
            session,
        )
        router = Router(registry_with(unloaded=(BIG,)), [provider], RoutingSpec())

        with pytest.raises(NotFound) as err:
            router.route("gpt-17")

    assert err.value.details["available"] == ["big-local", "c1"]


async def test_a_tenant_denied_the_cloud_is_forbidden_when_a_fallback_exists():
    async with aiohttp.ClientSession() as session:
        spec = ProviderSpec(name="p", base_url="http://x/v1", models=[CloudModelSpec(name="c1")])
        big = msgspec.structs.replace(BIG, fallback=["c1"])
        routing = RoutingSpec(tenants={"acme": TenantPolicy(cloud="deny")})
        router = Router(registry_with(unloaded=(big,)), [CloudProvider(spec, session)], routing)

        route = router.route("big-local")

    assert [c.model.name for c in route.cloud] == ["c1"]
    assert isinstance(router.refuse(route, "acme"), Forbidden)


def test_a_queue_that_would_break_the_ttft_target_spills():
    small = ModelSpec(name="small", kind="chat", path="embedded", max_context=2048, batch_slots=16)
    engine = BusyEngine(small)
    router = Router(registry_with(engine), [], RoutingSpec(ttft_target_ms=100))
    router.observe_ttft("small", 0.05)

    assert router.route("small").reason == "local"
    engine.unfinished_requests = 40  # 25 wait beyond 16 slots: ~50 ms x 2.56
    route = router.route("small")

    assert route.reason == "local_queue"
    assert route.details["estimated_ttft_ms"] == 128
    assert isinstance(router.refuse(route, "acme"), Overloaded)


def test_an_unhealthy_engine_is_a_reason_to_spill():
    small = ModelSpec(name="small", kind="chat", path="embedded", max_context=2048)
    router = Router(registry_with(BusyEngine(small, healthy=False)), [], RoutingSpec())

    assert router.route("small").reason == "local_unhealthy"


def test_a_fallback_no_provider_serves_is_a_config_error(tmp_path: Path):
    config = tmp_path / "models.yaml"
    config.write_text(
        "models:\n  - {name: m, kind: chat, path: embedded, max_context: 64, fallback: [nope]}\n"
    )

    with pytest.raises(ConfigError, match="nope"):
        load_models_config(config)
