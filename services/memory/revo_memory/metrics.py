"""Prometheus metrics of the memory service (request counts and latencies of the memory.*
endpoints are revo_core's revo_requests_total / revo_request_duration_seconds)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

STORED = Counter(
    "revo_memory_stored_total",
    "Memories stored, by action: created, updated (merged into a similar one), unchanged.",
    ["action"],
)
RECALLED = Histogram(
    "revo_memory_recalled_memories",
    "Memories returned per recall (after min_score and the token budget).",
    buckets=(0, 1, 2, 5, 10, 20, 50, 100),
)
RECALL_TRUNCATED = Counter(
    "revo_memory_recall_truncated_total", "Recalls that left memories out to fit the budget."
)
SEARCH_SECONDS = Histogram(
    "revo_memory_search_seconds",
    "The Postgres parts of a recall, by path: keyword (its keyword candidates, searched while "
    "the query is embedded), hnsw (vector candidates and scoring), or exact when the filters "
    "left the index too few candidates.",
    ["path"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1),
)
EMBED_SECONDS = Histogram(
    "revo_memory_embed_seconds",
    "One inference.embed call.",
    buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
EMBED_FAILURES = Counter(
    "revo_memory_embed_failures_total", "inference.embed calls that failed, by cause.", ["cause"]
)
QUERY_BATCH = Histogram(
    "revo_memory_query_embed_batch",
    "Recall queries embedded together in one inference.embed call.",
    buckets=(1, 2, 4, 8, 16, 32, 64),
)
QUERY_CACHE = Counter(
    "revo_memory_query_cache_total", "Recall query embeddings: cache hit or miss.", ["result"]
)
FORGOTTEN = Counter("revo_memory_forgotten_total", "Memories deleted by memory.forget.")
EXPIRED = Counter("revo_memory_expired_total", "Memories purged after their kind's retention.")
