"""memory.store: embed a batch, merge what repeats a memory of the same scope, write it all.

Dedupe is race-free: the transaction first takes an advisory lock of its exact scope, so
two stores into one scope (on any replicas) decide one after the other, each seeing the
other's rows. Nothing is written before the embeddings are back: an embedding service that
is down leaves no trace. Within a batch, a text close to an earlier text of the same batch
merges into that one's memory just as it would across requests.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

import asyncpg
import numpy as np
import structlog
from opentelemetry import trace

from revo_contracts.memory import (
    MemoryInput,
    MemoryScope,
    MemoryStoreRequest,
    MemoryStoreResponse,
    StoredMemory,
)
from revo_core.errors import InvalidRequest
from revo_memory import metrics
from revo_memory.db import pack_vector
from revo_memory.embeddings import Embedder
from revo_memory.settings import MemorySettings
from revo_memory.text import count_tokens, identifiers

# How far the dedupe search explores the HNSW graph. Measured on 1,000 restated memories at
# 100,000 (bench/memory.py, index m=16): 0.4% were not merged although an exact scan would
# have merged them; 1.7% at 16 and 2.8% at 10, for about 0.25 ms less Postgres per stored
# text. With today's m=12 index the bench's 500 restated memories gave 0.6 to 1.0% at 40.
DEDUPE_EF_SEARCH = 40
# The nearest memory of the exact scope, for each new vector. The planner picks the HNSW
# index for big scopes and the scope index (an exact search) for small ones.
_NEAREST = """
SELECT q.i, n.id, n.similarity, n.text, n.kind, n.tags, n.source_run, n.version
  FROM unnest($5::vector[]) WITH ORDINALITY AS q(v, i)
  LEFT JOIN LATERAL (
        SELECT m.id, 1 - (m.embedding <=> q.v) AS similarity, m.text, m.kind, m.tags,
               m.source_run, m.version
          FROM memory.memories m
         WHERE m.tenant = $1 AND m.repository = $2 AND m.agent = $3 AND m.user_id = $4
           AND (m.expires_at IS NULL OR m.expires_at > now())
         ORDER BY m.embedding <=> q.v
         LIMIT 1) n ON true
 ORDER BY q.i
"""
# The same without the index (`+ 0` hides the ordering from it): for vectors the HNSW
# candidates of other scopes crowded out.
_NEAREST_EXACT = _NEAREST.replace(
    "ORDER BY m.embedding <=> q.v", "ORDER BY (m.embedding <=> q.v) + 0"
)
_TSV = "to_tsvector('english', r.text)"
_IDENTS = "string_to_array(r.idents, ' ')"
_EXPIRES = "now() + r.retention_s * interval '1 second'"
_INSERT = f"""
INSERT INTO memory.memories (id, tenant, repository, agent, user_id, kind, text, tags,
                             source_run, version, embedding, tsv, idents, tokens, expires_at)
SELECT r.id, $1, $2, $3, $4, r.kind, r.text, string_to_array(r.tags, ' '), r.source_run,
       r.version, r.embedding, {_TSV}, {_IDENTS}, r.tokens, {_EXPIRES}
  FROM unnest($5::uuid[], $6::text[], $7::text[], $8::text[], $9::text[], $10::int[],
              $11::vector[], $12::text[], $13::int[], $14::float8[])
       AS r(id, kind, text, tags, source_run, version, embedding, idents, tokens, retention_s)
"""
_UPDATE = f"""
UPDATE memory.memories m
   SET kind = r.kind, text = r.text, tags = string_to_array(r.tags, ' '),
       source_run = r.source_run, version = r.version, embedding = r.embedding, tsv = {_TSV},
       idents = {_IDENTS},
       tokens = r.tokens, updated_at = now(), expires_at = {_EXPIRES}
  FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int[],
              $7::vector[], $8::text[], $9::int[], $10::float8[])
       AS r(id, kind, text, tags, source_run, version, embedding, idents, tokens, retention_s)
 WHERE m.id = r.id
"""
# Said again, unchanged: it counts as written now (for retention and time filters).
_TOUCH = f"""
UPDATE memory.memories m SET updated_at = now(), expires_at = {_EXPIRES}
  FROM unnest($1::uuid[], $2::float8[]) AS r(id, retention_s)
 WHERE m.id = r.id
"""
_VERSIONS = """
INSERT INTO memory.versions (memory_id, version, tenant, action, kind, text, tags,
                             source_run, similarity)
SELECT r.id, r.version, $1, r.action, r.kind, r.text, string_to_array(r.tags, ' '),
       r.source_run, r.similarity
  FROM unnest($2::uuid[], $3::int[], $4::text[], $5::text[], $6::text[], $7::text[],
              $8::text[], $9::float4[])
       AS r(id, version, action, kind, text, tags, source_run, similarity)
"""


@dataclass
class _State:
    """A memory as this batch leaves it."""

    id: uuid.UUID
    text: str
    kind: str
    tags: list[str]
    source_run: str | None
    version: int
    vector: np.ndarray | None  # None: an existing memory not rewritten (yet)
    new: bool
    touched: bool = False
    versions: list[tuple] = field(default_factory=list)


class MemoryWriter:
    def __init__(self, pool: asyncpg.Pool, embedder: Embedder, settings: MemorySettings) -> None:
        self.pool = pool
        self.embedder = embedder
        self.settings = settings

    async def store(self, request: MemoryStoreRequest) -> MemoryStoreResponse:
        structlog.contextvars.bind_contextvars(tenant=request.scope.tenant)
        self._check(request.memories)
        vectors = await self.embedder.embed(
            [m.text for m in request.memories], request.scope.tenant
        )
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", scope_lock_key(request.scope))
            # A duplicate is among the very nearest: a short HNSW search finds it, and the
            # lock of the scope is held for less time than recall's ef_search would take.
            await conn.execute(f"SET LOCAL hnsw.ef_search = {DEDUPE_EF_SEARCH}")
            nearest = await self._nearest(conn, request.scope, vectors)
            merge = _Merge(self.settings.dedupe_threshold, nearest, vectors)
            stored = [merge.add(i, memory) for i, memory in enumerate(request.memories)]
            await self._write(conn, request.scope, merge.states.values())
        for item in stored:
            metrics.STORED.labels(item.action).inc()
        trace.get_current_span().set_attributes(
            {"revo.tenant": request.scope.tenant, "revo.memory.count": len(stored)}
        )
        return MemoryStoreResponse(stored=stored, embed_model=self.embedder.model_name)

    def _check(self, memories: list[MemoryInput]) -> None:
        limit = self.settings.max_text_chars
        for i, memory in enumerate(memories):
            if not memory.text.strip():
                raise InvalidRequest("memory text is empty", {"field": f"memories[{i}].text"})
            if len(memory.text) > limit:
                raise InvalidRequest(
                    f"memory text of {len(memory.text)} characters exceeds the limit of {limit}",
                    {"field": f"memories[{i}].text", "limit": limit},
                )

    async def _nearest(
        self, conn: asyncpg.Connection, scope: MemoryScope, vectors: np.ndarray
    ) -> list[asyncpg.Record | None]:
        keys = _scope_keys(scope)
        packed = [pack_vector(v) for v in vectors]
        rows = await conn.fetch(_NEAREST, *keys, packed)
        missing = [i for i, row in enumerate(rows) if row["id"] is None]
        if missing:
            exact = await conn.fetch(_NEAREST_EXACT, *keys, [packed[i] for i in missing])
            for i, row in zip(missing, exact, strict=True):
                rows[i] = row
        return [row if row["id"] is not None else None for row in rows]

    async def _write(
        self, conn: asyncpg.Connection, scope: MemoryScope, states: Iterable[_State]
    ) -> None:
        retention = self.settings.retention_s
        fresh, rewritten, restated, versions = [], [], [], []
        for state in states:
            if state.new:
                fresh.append(state)
            elif state.vector is not None:
                rewritten.append(state)
            elif state.touched:
                restated.append(state)
            versions.extend(state.versions)
        if fresh:
            await conn.execute(_INSERT, *_scope_keys(scope), *_columns(fresh, retention))
        if rewritten:
            await conn.execute(_UPDATE, *_columns(rewritten, retention))
        if restated:
            ids = [state.id for state in restated]
            await conn.execute(_TOUCH, ids, [retention.get(state.kind) for state in restated])
        if versions:
            await conn.execute(_VERSIONS, scope.tenant, *map(list, zip(*versions, strict=True)))


class _Merge:
    """Decides, text by text, whether each creates a memory or rewrites one."""

    def __init__(
        self, threshold: float, nearest: list[asyncpg.Record | None], vectors: np.ndarray
    ) -> None:
        self.threshold = threshold
        self.nearest = nearest
        self.vectors = vectors
        self.states: dict[uuid.UUID, _State] = {}
        self.owner: list[uuid.UUID] = []  # the memory each earlier text of the batch went to

    def add(self, i: int, memory: MemoryInput) -> StoredMemory:
        target, similarity = self._closest(i)
        vector = self.vectors[i]
        tags = sorted(set(memory.tags))
        if target is None:
            state = _State(uuid.uuid4(), memory.text, memory.kind, tags, memory.source_run, 1,
                           vector, new=True)  # fmt: skip
            self.states[state.id] = state
            self.owner.append(state.id)
            state.versions.append(_version(state, "created", None))
            return StoredMemory(id=str(state.id), version=1, action="created")
        self.owner.append(target.id)
        target.touched = True
        sim = round(float(similarity), 4)
        if _same(target, memory, tags):
            return StoredMemory(id=str(target.id), version=target.version, action="unchanged",
                                similarity=sim)  # fmt: skip
        target.text, target.kind, target.vector = memory.text, memory.kind, vector
        target.tags = sorted(set(target.tags) | set(tags))
        target.source_run = memory.source_run or target.source_run
        target.version += 1
        target.versions.append(_version(target, "updated", sim))
        return StoredMemory(id=str(target.id), version=target.version, action="updated",
                            similarity=sim)  # fmt: skip

    def _closest(self, i: int) -> tuple[_State | None, float]:
        best: _State | None = None
        best_sim = self.threshold
        row = self.nearest[i]
        if row is not None and row["similarity"] >= best_sim:
            best, best_sim = self._existing(row), row["similarity"]
        if i:
            sims = self.vectors[:i] @ self.vectors[i]
            j = int(np.argmax(sims))
            if sims[j] >= best_sim:
                best, best_sim = self.states[self.owner[j]], float(sims[j])
        return best, best_sim

    def _existing(self, row: asyncpg.Record) -> _State:
        state = self.states.get(row["id"])
        if state is None:
            state = _State(row["id"], row["text"], row["kind"], list(row["tags"]),
                           row["source_run"], row["version"], None, new=False)  # fmt: skip
            self.states[state.id] = state
        return state


def _same(state: _State, memory: MemoryInput, tags: list[str]) -> bool:
    return state.text == memory.text and state.kind == memory.kind and set(tags) <= set(state.tags)


def _version(state: _State, action: str, similarity: float | None) -> tuple:
    return (state.id, state.version, action, state.kind, state.text, " ".join(state.tags),
            state.source_run, similarity)  # fmt: skip


def _columns(states: list[_State], retention: dict[str, float]) -> list[list]:
    rows = []
    for s in states:
        assert s.vector is not None
        rows.append((s.id, s.kind, s.text, " ".join(s.tags), s.source_run, s.version,
                     pack_vector(s.vector), " ".join(identifiers(s.text)), count_tokens(s.text),
                     retention.get(s.kind)))  # fmt: skip
    return [list(column) for column in zip(*rows, strict=True)]


def _scope_keys(scope: MemoryScope) -> tuple[str, str, str, str]:
    return scope.tenant, scope.repository or "", scope.agent or "", scope.user or ""


def scope_lock_key(scope: MemoryScope) -> int:
    """An advisory lock key per exact scope (64 bits of a hash: collisions only serialize)."""
    digest = hashlib.blake2b("\x1f".join(_scope_keys(scope)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)
