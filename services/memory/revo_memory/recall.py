"""memory.recall: hybrid search, best first, cut to the caller's token budget.

Candidates come from two paths over the memories the scope sees (not expired, matching the
filter): the nearest by cosine distance (HNSW, exploring `ef_search` = 200 candidates), and
the keyword matches (GIN):
memories that have every word of `websearch_to_tsquery('english', query)` (stemmed; quotes
and `-word` work as on a search engine) or one of the query's identifiers kept whole
(text.py), best `ts_rank` first. The keyword candidates need no embedding, so they are
searched while the query is being embedded. Each candidate is then scored

    score    = (1 - w) * similarity + w * keyword
    keyword  = mean of the parts that apply to the query:
               words:       1 if the memory has every word of the query, else 0
               identifiers: the share of the query's identifiers the memory names

with similarity = max(0, cosine similarity of the embeddings) and w the keyword weight
(0.3 by default); all three are in [0, 1] and returned with each memory. A memory naming
the query's exact test or error code thus climbs above ones that only resemble it. When
the filters leave HNSW fewer than top_k candidates (a small scope in a big table), the
vector path is rerun as an exact scan of what the scope sees.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg
import structlog
from opentelemetry import trace

from revo_contracts.memory import Memory, MemoryRecallRequest, MemoryRecallResponse
from revo_core.errors import InvalidRequest
from revo_memory import metrics
from revo_memory.db import pack_vector
from revo_memory.embeddings import Embedder
from revo_memory.scopes import Where, matching, not_expired, scope_of, visible_to
from revo_memory.settings import MemorySettings
from revo_memory.text import identifiers

# The keyword candidates. They do not need the query's embedding, so they are searched while
# the query is being embedded (about 1 ms of Postgres off the recall's path).
_KEYWORD = """
WITH q AS (SELECT websearch_to_tsquery('english', {text}) AS words,
                  {idents}::text[] AS idents)
SELECT m.id FROM memory.memories m, q
 WHERE (m.tsv @@ q.words OR m.idents && q.idents) AND {where}
 ORDER BY cardinality(ARRAY(SELECT unnest(m.idents) INTERSECT SELECT unnest(q.idents)))
          DESC, ts_rank(m.tsv, q.words) DESC
 LIMIT {candidates}
"""
# The vector candidates, joined with the keyword ones, scored, and only the top_k read whole
# (scoring reads no text: 1.2 ms less per recall at 100,000 memories than reading every
# candidate's row). `{where}` again on the keyword ids: a memory may have changed since.
_SEARCH = """
WITH q AS (SELECT websearch_to_tsquery('english', {text}) AS words,
                  {idents}::text[] AS idents),
vec AS (
    SELECT m.id FROM memory.memories m WHERE {where}
     ORDER BY {order} LIMIT {candidates}
),
scored AS (
    SELECT m.id, m.updated_at, greatest(0, 1 - (m.embedding <=> {vector})) AS similarity,
           CASE WHEN m.tsv @@ q.words THEN 1.0 ELSE 0.0 END AS words_part,
           cardinality(ARRAY(SELECT unnest(m.idents) INTERSECT SELECT unnest(q.idents)))::float8
             / greatest(cardinality(q.idents), 1) AS idents_part,
           numnode(q.words) > 0 AS has_words, cardinality(q.idents) > 0 AS has_idents
      FROM (SELECT id FROM vec UNION SELECT unnest({keyword_ids}::uuid[])) c
      JOIN memory.memories m ON m.id = c.id, q
     WHERE {where}
),
ranked AS (
    SELECT s.id, s.updated_at, s.similarity, k.keyword,
           (1 - {weight}::float8) * s.similarity + {weight}::float8 * k.keyword AS score
      FROM scored s, LATERAL (
           SELECT CASE WHEN s.has_words AND s.has_idents THEN (s.words_part + s.idents_part) / 2
                       WHEN s.has_idents THEN s.idents_part
                       ELSE s.words_part END AS keyword) k
     ORDER BY score DESC, s.updated_at DESC
     LIMIT {top_k}
)
SELECT m.id, m.tenant, m.repository, m.agent, m.user_id, m.kind, m.text, m.tags,
       m.source_run, m.version, m.tokens, r.similarity, r.keyword, r.score,
       extract(epoch FROM m.created_at) AS created_at,
       extract(epoch FROM m.updated_at) AS updated_at,
       extract(epoch FROM m.expires_at) AS expires_at,
       (SELECT count(*) FROM vec) AS vector_candidates
  FROM ranked r JOIN memory.memories m ON m.id = r.id
 ORDER BY r.score DESC, r.updated_at DESC
"""
_HNSW_ORDER = "m.embedding <=> {vector}"
# `+ 0` keeps the planner off the HNSW index: an exact scan of what the filters leave.
_EXACT_ORDER = "(m.embedding <=> {vector}) + 0"


class MemoryRecall:
    def __init__(self, pool: asyncpg.Pool, embedder: Embedder, settings: MemorySettings) -> None:
        self.pool = pool
        self.embedder = embedder
        self.settings = settings

    async def recall(self, request: MemoryRecallRequest) -> MemoryRecallResponse:
        structlog.contextvars.bind_contextvars(tenant=request.scope.tenant)
        self._check(request)
        keyword = asyncio.ensure_future(self._keyword_ids(request))
        try:
            embedded = await self.embedder.embed_query(request.query, request.scope.tenant)
            keyword_ids = await keyword
        finally:
            _discard(keyword)
        vector = pack_vector(embedded)
        rows = await self._search(request, vector, keyword_ids, exact=False)
        if not rows or rows[0]["vector_candidates"] < request.top_k:
            rows = await self._search(request, vector, keyword_ids, exact=True)
        rows = [row for row in rows if row["score"] >= request.min_score]
        memories, tokens, truncated = within_budget(rows, request.token_budget)
        metrics.RECALLED.observe(len(memories))
        if truncated:
            metrics.RECALL_TRUNCATED.inc()
        trace.get_current_span().set_attributes(
            {"revo.tenant": request.scope.tenant, "revo.memory.count": len(memories)}
        )
        return MemoryRecallResponse(
            memories=memories,
            tokens=tokens,
            truncated=truncated,
            embed_model=self.embedder.model_name,
        )

    def _check(self, request: MemoryRecallRequest) -> None:
        if not request.query.strip():
            raise InvalidRequest("query is empty", {"field": "query"})
        if len(request.query) > self.settings.max_text_chars:
            raise InvalidRequest(
                f"query of {len(request.query)} characters exceeds the limit of "
                f"{self.settings.max_text_chars}",
                {"field": "query", "limit": self.settings.max_text_chars},
            )
        if request.top_k > self.settings.max_top_k:
            raise InvalidRequest(
                f"top_k {request.top_k} is above the maximum of {self.settings.max_top_k}",
                {"field": "top_k", "max": self.settings.max_top_k},
            )
        f = request.filter
        if f is not None and f.since is not None and f.until is not None and f.since > f.until:
            raise InvalidRequest("filter.since is after filter.until", {"field": "filter.since"})

    def _candidates(self, top_k: int) -> int:
        """Rows each path hands to scoring: enough for the keyword part to reorder the top_k
        (HNSW explores ef_search candidates whatever this limit is)."""
        return max(top_k, min(self.settings.hnsw_ef_search, max(4 * top_k, 50)))

    async def _keyword_ids(self, request: MemoryRecallRequest) -> list[Any]:
        where = Where()
        slots = {
            "text": where.param(request.query),
            "idents": where.param(identifiers(request.query)),
            "candidates": where.param(self._candidates(request.top_k)),
        }
        _seen_by(where, request)
        rows = await self._timed("keyword", _KEYWORD.format(where=where.sql(), **slots), where)
        return [row["id"] for row in rows]

    async def _search(
        self, request: MemoryRecallRequest, vector: bytes, keyword_ids: list[Any], exact: bool
    ) -> list[asyncpg.Record]:
        where = Where()
        slots: dict[str, str] = {
            "vector": where.param(vector),
            "text": where.param(request.query),
            "idents": where.param(identifiers(request.query)),
            "keyword_ids": where.param(keyword_ids),
            "candidates": where.param(self._candidates(request.top_k)),
            "weight": where.param(self.settings.keyword_weight),
            "top_k": where.param(request.top_k),
        }
        _seen_by(where, request)
        order = (_EXACT_ORDER if exact else _HNSW_ORDER).format(vector=slots["vector"])
        sql = _SEARCH.format(where=where.sql(), order=order, **slots)
        return await self._timed("exact" if exact else "hnsw", sql, where)

    async def _timed(self, path: str, sql: str, where: Where) -> list[asyncpg.Record]:
        started = time.perf_counter()
        rows = await self.pool.fetch(sql, *where.args)
        metrics.SEARCH_SECONDS.labels(path).observe(time.perf_counter() - started)
        return rows


def _seen_by(where: Where, request: MemoryRecallRequest) -> None:
    """What the recall may return: the scope's memories, not expired, matching the filter."""
    visible_to(where, request.scope)
    not_expired(where)
    matching(where, request.filter)


def _discard(task: asyncio.Future) -> None:
    """Stop `task` if it still runs (the embedding failed); an error it ended with is
    dropped, since the caller's own error is the one that explains the failure."""
    task.cancel()
    if task.done() and not task.cancelled():
        task.exception()


def within_budget(rows: list[Any], budget: int | None) -> tuple[list[Memory], int, bool]:
    """Best first while they fit: the first memory that does not fit ends the list (a
    smaller one after it would break the best-first order the caller relies on)."""
    memories: list[Memory] = []
    used = 0
    for row in rows:
        if budget is not None and used + row["tokens"] > budget:
            return memories, used, True
        used += row["tokens"]
        memories.append(_memory(row))
    return memories, used, False


def _memory(row: Any) -> Memory:
    return Memory(
        id=str(row["id"]),
        text=row["text"],
        kind=row["kind"],
        scope=scope_of(row),
        version=row["version"],
        created_at=float(row["created_at"]),
        updated_at=float(row["updated_at"]),
        tags=list(row["tags"]),
        source_run=row["source_run"],
        expires_at=float(row["expires_at"]) if row["expires_at"] is not None else None,
        score=round(float(row["score"]), 6),
        similarity=round(float(row["similarity"]), 6),
        keyword=round(float(row["keyword"]), 6),
        tokens=row["tokens"],
    )
