"""Settings of the memory service (env prefix REVO_MEMORY_)."""

from __future__ import annotations

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from revo_contracts.memory import MEMORY_KINDS
from revo_core.settings import ServiceSettings, database_url_field


class MemorySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="REVO_MEMORY_", extra="ignore")

    http_port: int = 8103
    database_url: str = database_url_field("REVO_MEMORY_")
    pool_size: int = Field(default=10, ge=2, le=100)
    # The embedding model asked of inference.embed; its dimension sizes the vector column.
    embed_model: str = "auto"
    embed_timeout_s: float = 30.0
    # How long start-up waits for inference.embed to answer before giving up.
    embed_wait_s: float = 600.0
    # A new memory at least this similar (cosine) to one of the same scope updates it.
    dedupe_threshold: float = Field(default=0.9, gt=0.0, le=1.0)
    # score = (1 - w) * vector similarity + w * keyword rank.
    keyword_weight: float = Field(default=0.3, ge=0.0, le=1.0)
    max_top_k: int = Field(default=100, ge=1, le=1000)
    max_text_chars: int = Field(default=8000, ge=1, le=100_000)
    # HNSW: candidates examined per query, and the graph's shape. With m=12 and
    # ef_construction=48, ef_search 200 measured recall@10 of 0.96 to 0.98 at 100k memories
    # (bench/memory.py); 100 gave 0.94 to 0.95, pgvector's default 40 0.86 to 0.88. That
    # graph costs a third less Postgres per stored memory than m=16, ef_construction=64, for
    # about 0.01 less recall@10 (docs/services/memory.md).
    hnsw_ef_search: int = Field(default=200, ge=10, le=1000)
    hnsw_m: int = Field(default=12, ge=4, le=100)
    hnsw_ef_construction: int = Field(default=48, ge=16, le=1000)
    # Seconds a memory of a kind is kept after it was last written; kinds not listed are
    # kept until forgotten. Env: REVO_MEMORY_RETENTION_S='{"summary": 2592000}'.
    retention_s: dict[str, float] = {}
    purge_every_s: float = 60.0
    # Requests handled at once; beyond it callers get `overloaded`.
    max_in_flight: int = 256
    # Query embeddings kept for repeated recall queries (per replica).
    query_cache_size: int = Field(default=2048, ge=0)

    @field_validator("retention_s")
    @classmethod
    def _known_kinds(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(value) - set(MEMORY_KINDS))
        if unknown:
            raise ValueError(f"unknown memory kinds {unknown}; kinds are {list(MEMORY_KINDS)}")
        if any(seconds <= 0 for seconds in value.values()):
            raise ValueError("retention must be a positive number of seconds")
        return value
