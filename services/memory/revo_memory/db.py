"""Postgres for the memory service: a pool that speaks pgvector, and the schema sized by
the embedding model."""

from __future__ import annotations

import struct
from pathlib import Path
from string import Template

import asyncpg
import numpy as np

from revo_core.db import apply_schema, connect_pool
from revo_core.errors import RevoError
from revo_core.logging import get_logger
from revo_memory.settings import MemorySettings

SCHEMA_SQL = Path(__file__).with_name("schema.sql")
log = get_logger("revo.memory.db")


class EmbeddingModelMismatch(RevoError):
    """The stored vectors were made by another model (or dimension) than inference serves."""


def pack_vector(vector: np.ndarray) -> bytes:
    """pgvector's binary format: dimension, a reserved int16, then big-endian float32s."""
    data = np.asarray(vector, dtype=">f4")
    return struct.pack(">HH", data.shape[0], 0) + data.tobytes()


def _encode(value: object) -> bytes:
    # Vectors are packed by the caller (bytes): asyncpg would read a list, or an array of
    # vectors, as a multi-dimensional array.
    return value if isinstance(value, bytes) else pack_vector(np.asarray(value))


def _decode(data: bytes) -> np.ndarray:
    (dimensions,) = struct.unpack_from(">H", data)
    return np.frombuffer(data, dtype=">f4", count=dimensions, offset=4).astype(np.float32)


async def _register_vector(conn: asyncpg.Connection) -> None:
    try:
        await conn.set_type_codec(
            "vector", schema="public", encoder=_encode, decoder=_decode, format="binary"
        )
    except ValueError:
        # Before the schema made the extension: prepare_schema renews the connections.
        log.debug("vector type not there yet")


async def connect(settings: MemorySettings, attempts: int = 20) -> asyncpg.Pool:
    """A pool whose connections speak pgvector and search HNSW with `hnsw_ef_search`
    candidates."""
    return await connect_pool(
        settings.database_url,
        max_size=settings.pool_size,
        attempts=attempts,
        init=_register_vector,
        server_settings={"hnsw.ef_search": str(settings.hnsw_ef_search)},
    )


async def prepare_schema(
    pool: asyncpg.Pool, settings: MemorySettings, model: str, dimensions: int
) -> None:
    """Create the schema for `dimensions`, or check that the existing one fits `model`."""
    sql = Template(SCHEMA_SQL.read_text()).substitute(
        dimensions=dimensions,
        hnsw_m=settings.hnsw_m,
        hnsw_ef_construction=settings.hnsw_ef_construction,
    )
    await apply_schema(pool, sql)
    await pool.expire_connections()  # new connections register the vector codec
    async with pool.acquire() as conn:
        await _check_model(conn, model, dimensions)


async def _check_model(conn: asyncpg.Connection, model: str, dimensions: int) -> None:
    column = await conn.fetchval(
        "SELECT atttypmod FROM pg_attribute "
        "WHERE attrelid = 'memory.memories'::regclass AND attname = 'embedding'"
    )
    await conn.execute(
        "INSERT INTO memory.embedding_model (model, dimensions) VALUES ($1, $2) "
        "ON CONFLICT (singleton) DO NOTHING",
        model,
        dimensions,
    )
    stored = await conn.fetchrow("SELECT model, dimensions FROM memory.embedding_model")
    if column != dimensions or stored["model"] != model or stored["dimensions"] != dimensions:
        raise EmbeddingModelMismatch(
            f"memory.memories holds {stored['dimensions']}-d vectors of {stored['model']!r}, "
            f"but inference.embed serves {model!r} ({dimensions}-d): recall would compare "
            "vectors of different models. Configure REVO_MEMORY_EMBED_MODEL to the stored "
            "model, or drop the memory schema to start over."
        )
