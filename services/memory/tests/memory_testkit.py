"""Helpers of the memory tests: calls in a fresh tenant, reading Postgres directly."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from revo_contracts import subjects
from revo_contracts.memory import (
    MemoryForgetRequest,
    MemoryForgetResponse,
    MemoryHistoryRequest,
    MemoryHistoryResponse,
    MemoryInput,
    MemoryRecallRequest,
    MemoryRecallResponse,
    MemoryScope,
    MemoryStoreRequest,
    MemoryStoreResponse,
)
from revo_core.bus import Bus

# The shared test service keeps summaries this long, so a test can watch one expire.
SUMMARY_RETENTION_S = 3.0


def new_tenant(prefix: str = "m") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


async def store(bus: Bus, scope: MemoryScope, *texts: str, **fields: Any) -> MemoryStoreResponse:
    request = MemoryStoreRequest(
        scope=scope, memories=[MemoryInput(text=text, **fields) for text in texts]
    )
    return await bus.request(subjects.MEMORY_STORE, request, MemoryStoreResponse, timeout=30)


async def recall(bus: Bus, scope: MemoryScope, query: str, **fields: Any) -> MemoryRecallResponse:
    request = MemoryRecallRequest(scope=scope, query=query, **fields)
    return await bus.request(subjects.MEMORY_RECALL, request, MemoryRecallResponse, timeout=30)


async def forget(bus: Bus, scope: MemoryScope, **fields: Any) -> MemoryForgetResponse:
    request = MemoryForgetRequest(scope=scope, **fields)
    return await bus.request(subjects.MEMORY_FORGET, request, MemoryForgetResponse)


async def history(bus: Bus, scope: MemoryScope, memory_id: str) -> MemoryHistoryResponse:
    request = MemoryHistoryRequest(scope=scope, id=memory_id)
    return await bus.request(subjects.MEMORY_HISTORY, request, MemoryHistoryResponse)


async def raw(bus: Bus, subject: str, payload: bytes) -> Any:
    """Send bytes as they are (for requests the typed Structs would refuse to build)."""
    return await bus.nc.request(subject, payload, timeout=30)


async def rows_of(dsn: str, tenant: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        memories = await conn.fetchval(
            "SELECT count(*) FROM memory.memories WHERE tenant = $1", tenant
        )
        versions = await conn.fetchval(
            "SELECT count(*) FROM memory.versions WHERE tenant = $1", tenant
        )
    finally:
        await conn.close()
    return memories + versions


def texts(response: MemoryRecallResponse) -> list[str]:
    return [memory.text for memory in response.memories]
