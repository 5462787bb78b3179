"""Wiring of the memory service: the embedding model, Postgres, the endpoints, the purge."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import asyncpg
from aiohttp import web

from revo_contracts.streams import AUDIT
from revo_core.errors import UpstreamError
from revo_core.jetstream import ensure_streams
from revo_core.logging import get_logger
from revo_core.service import BUS, SETTINGS, create_service_app, serving_pool
from revo_memory.api import start_endpoints
from revo_memory.db import connect, prepare_schema
from revo_memory.embeddings import Embedder
from revo_memory.lifecycle import MemoryLifecycle
from revo_memory.recall import MemoryRecall
from revo_memory.settings import MemorySettings
from revo_memory.store import MemoryWriter

SERVICE = "memory"
EMBEDDER: web.AppKey[Embedder] = web.AppKey("embedder", Embedder)
POOL: web.AppKey[asyncpg.Pool] = web.AppKey("pool", asyncpg.Pool)
log = get_logger("revo.memory")


def create_app(settings: MemorySettings) -> web.Application:
    app = create_service_app(SERVICE, settings)
    app.cleanup_ctx.append(_embedder_ctx)
    app.cleanup_ctx.append(_database_ctx)
    app.cleanup_ctx.append(_memory_ctx)
    return app


async def _embedder_ctx(app: web.Application) -> AsyncIterator[None]:
    settings: MemorySettings = app[SETTINGS]  # type: ignore[assignment]
    embedder = Embedder(
        app[BUS], settings.embed_model, settings.embed_timeout_s, settings.query_cache_size
    )
    await wait_for_model(embedder, settings.embed_wait_s)
    embedder.start()
    app[EMBEDDER] = embedder
    yield
    await embedder.stop()


async def wait_for_model(embedder: Embedder, wait_s: float) -> None:
    """The vector column is sized by the model: ask inference (it may still be loading)."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            dimensions = await embedder.probe()
        except UpstreamError as exc:
            if time.monotonic() >= deadline:
                raise
            log.info("waiting for inference.embed", error=exc.message)
            await asyncio.sleep(1.0)
            continue
        log.info("embedding model", model=embedder.model_name, dimensions=dimensions)
        return


async def _database_ctx(app: web.Application) -> AsyncIterator[None]:
    settings: MemorySettings = app[SETTINGS]  # type: ignore[assignment]
    embedder = app[EMBEDDER]
    pool = await connect(settings)
    await prepare_schema(pool, settings, embedder.model_name, embedder.dimensions)
    app[POOL] = pool
    async with serving_pool(app, pool):
        yield


async def _memory_ctx(app: web.Application) -> AsyncIterator[None]:
    settings: MemorySettings = app[SETTINGS]  # type: ignore[assignment]
    pool, embedder = app[POOL], app[EMBEDDER]
    lifecycle = MemoryLifecycle(pool)
    await ensure_streams(app[BUS].js, (AUDIT,))  # where `memory.forgotten` is recorded
    endpoints = await start_endpoints(
        app[BUS],
        MemoryWriter(pool, embedder, settings),
        MemoryRecall(pool, embedder, settings),
        lifecycle,
        settings.max_in_flight,
    )
    await lifecycle.purge_expired()
    purge = asyncio.create_task(lifecycle.purge_forever(settings.purge_every_s))
    log.info(
        "remembering",
        dedupe_threshold=settings.dedupe_threshold,
        keyword_weight=settings.keyword_weight,
        retention_s=settings.retention_s,
    )
    yield
    purge.cancel()
    with contextlib.suppress(Exception):
        await endpoints.stop(grace=settings.drain_grace_s)
