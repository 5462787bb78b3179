"""Wiring of the inference service: models, endpoints, usage, health, metrics."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from revo_contracts import subjects
from revo_contracts.inference import ChatRequest, EmbedRequest, ModelsRequest
from revo_contracts.streams import USAGE
from revo_core.endpoints import Endpoints
from revo_core.jetstream import ensure_streams
from revo_core.logging import get_logger
from revo_core.service import BUS, SETTINGS, create_service_app, ready_check
from revo_inference.cloud import CloudCaller
from revo_inference.config import ModelsConfig, ModelSpec, load_models_config
from revo_inference.embedder import LocalEmbedder
from revo_inference.engine import LocalChatEngine
from revo_inference.handlers import InferenceHandlers
from revo_inference.prepare_model import embedding_model_dir, prepare
from revo_inference.providers import CloudProvider
from revo_inference.registry import ModelRegistry
from revo_inference.router import Router
from revo_inference.settings import InferenceSettings
from revo_inference.usage import UsagePublisher

SERVICE = "inference"
REGISTRY: web.AppKey[ModelRegistry] = web.AppKey("registry", ModelRegistry)
ENDPOINTS: web.AppKey[Endpoints] = web.AppKey("endpoints", Endpoints)
CONFIG: web.AppKey[ModelsConfig] = web.AppKey("models_config", ModelsConfig)
ROUTER: web.AppKey[Router] = web.AppKey("router", Router)
log = get_logger("revo.inference")


def create_app(settings: InferenceSettings) -> web.Application:
    app = create_service_app(SERVICE, settings)
    app.cleanup_ctx.append(_models_ctx)
    app.cleanup_ctx.append(_providers_ctx)
    app.cleanup_ctx.append(_endpoints_ctx)
    return app


def resolve_model_path(spec: ModelSpec) -> str:
    if spec.path != "embedded":
        return spec.path
    return str(prepare() if spec.kind == "chat" else embedding_model_dir())


async def _models_ctx(app: web.Application) -> AsyncIterator[None]:
    settings: InferenceSettings = app[SETTINGS]  # type: ignore[assignment]
    registry = ModelRegistry()
    config = load_models_config(settings.models_file)
    app[CONFIG] = config
    for spec in config.models:
        if not spec.load:
            if spec.kind == "chat":
                registry.add_unloaded_chat(spec)
            log.info("model listed but not loaded", model=spec.name)
            continue
        path = resolve_model_path(spec)
        if spec.kind == "chat":
            registry.add_chat(LocalChatEngine.load(spec, path))
        else:
            registry.add_embed(LocalEmbedder(spec, path, settings.embed_threads))
    app[REGISTRY] = registry
    ready_check(app, registry.healthy)
    yield
    registry.shutdown()
    log.info("models unloaded")


async def _providers_ctx(app: web.Application) -> AsyncIterator[None]:
    """The cloud providers (none by default) share one HTTP connection pool."""
    config = app[CONFIG]
    async with aiohttp.ClientSession() as session:
        providers = [CloudProvider(spec, session) for spec in config.providers]
        app[ROUTER] = Router(app[REGISTRY], providers, config.routing)
        log.info("cloud providers", providers=[p.name for p in providers])
        yield


async def _endpoints_ctx(app: web.Application) -> AsyncIterator[None]:
    settings: InferenceSettings = app[SETTINGS]  # type: ignore[assignment]
    bus = app[BUS]
    await ensure_streams(bus.js, (USAGE,))
    usage = UsagePublisher(bus)
    cloud = CloudCaller(bus, app[CONFIG].routing.ledger_timeout_s)
    handlers = InferenceHandlers(app[REGISTRY], usage, app[ROUTER], cloud)
    endpoints = Endpoints(
        bus,
        SERVICE,
        description="Local-first LLM inference (vLLM) and embeddings",
        max_in_flight=settings.max_in_flight,
        ping_interval=settings.ping_interval_s,
    )
    await endpoints.start()
    group = subjects.INFERENCE_QUEUE_GROUP
    await endpoints.add_stream("chat", subjects.INFERENCE_CHAT, ChatRequest, handlers.chat, group)
    await endpoints.add("embed", subjects.INFERENCE_EMBED, EmbedRequest, handlers.embed, group)
    await endpoints.add("models", subjects.INFERENCE_MODELS, ModelsRequest, handlers.models, group)
    app[ENDPOINTS] = endpoints
    log.info("serving", subjects=[subjects.INFERENCE_CHAT, subjects.INFERENCE_EMBED])
    yield
    await endpoints.stop(grace=settings.drain_grace_s)
    await asyncio.gather(usage.flush(), cloud.flush())
