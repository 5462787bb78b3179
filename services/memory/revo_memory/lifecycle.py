"""memory.forget, memory.history and the retention purge."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import structlog

from revo_contracts.memory import (
    MemoryForgetRequest,
    MemoryForgetResponse,
    MemoryHistoryRequest,
    MemoryHistoryResponse,
    MemoryVersion,
)
from revo_core.errors import InvalidRequest, NotFound
from revo_core.logging import get_logger
from revo_memory import metrics
from revo_memory.scopes import Where, matching, narrowed_to

_HISTORY = """
SELECT v.version, v.action, v.kind, v.text, v.tags, v.source_run, v.similarity,
       extract(epoch FROM v.recorded_at) AS recorded_at
  FROM memory.versions v
 WHERE v.memory_id = $1 AND v.tenant = $2
 ORDER BY v.version
"""
_PURGE = """
DELETE FROM memory.memories
 WHERE id IN (SELECT id FROM memory.memories
               WHERE expires_at IS NOT NULL AND expires_at <= now() LIMIT $1)
"""
log = get_logger("revo.memory.lifecycle")


class MemoryLifecycle:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def forget(self, request: MemoryForgetRequest) -> MemoryForgetResponse:
        structlog.contextvars.bind_contextvars(tenant=request.scope.tenant)
        if not request.ids and request.filter is None:
            raise InvalidRequest("name the memories to forget: ids, or a filter ({} for all)")
        where = Where()
        narrowed_to(where, request.scope)
        if request.ids:
            where.add(f"m.id = ANY({where.param([uuid.UUID(i) for i in request.ids])}::uuid[])")
        matching(where, request.filter)
        rows = await self.pool.fetch(
            f"DELETE FROM memory.memories m WHERE {where.sql()} RETURNING m.id", *where.args
        )
        metrics.FORGOTTEN.inc(len(rows))
        log.info("memories forgotten", count=len(rows))
        return MemoryForgetResponse(forgotten=len(rows), ids=[str(row["id"]) for row in rows])

    async def history(self, request: MemoryHistoryRequest) -> MemoryHistoryResponse:
        structlog.contextvars.bind_contextvars(tenant=request.scope.tenant)
        rows = await self.pool.fetch(_HISTORY, uuid.UUID(request.id), request.scope.tenant)
        if not rows:
            # Another tenant's memory reads exactly like one that never existed.
            raise NotFound(f"no memory {request.id} for tenant {request.scope.tenant}")
        return MemoryHistoryResponse(id=request.id, versions=[_version(row) for row in rows])

    async def purge_expired(self, batch: int = 5000) -> int:
        """Delete memories past their retention (their history goes with them)."""
        total = 0
        while True:
            deleted = int((await self.pool.execute(_PURGE, batch)).split()[-1])
            total += deleted
            if deleted < batch:
                break
        if total:
            metrics.EXPIRED.inc(total)
            log.info("expired memories purged", count=total)
        return total

    async def purge_forever(self, every_s: float) -> None:
        while True:
            await asyncio.sleep(every_s)
            try:
                await self.purge_expired()
            except Exception as exc:
                log.warning("purge failed", error=str(exc))


def _version(row: asyncpg.Record) -> MemoryVersion:
    return MemoryVersion(
        version=row["version"],
        action=row["action"],
        kind=row["kind"],
        text=row["text"],
        recorded_at=float(row["recorded_at"]),
        tags=list(row["tags"]),
        source_run=row["source_run"],
        similarity=round(float(row["similarity"]), 4) if row["similarity"] is not None else None,
    )
