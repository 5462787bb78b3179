"""Chat sessions in Postgres: who owns each, and its items numbered per session from 1.

An item's body is its whole `ChatItem` frame as JSON, so a replay sends exactly what the
live socket got. Numbers are taken under a per-session advisory lock: follow tasks of one
session on several replicas never take the same seq.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

import asyncpg
import msgspec

from revo_contracts.chat import ChatItem

_item_decoder = msgspec.json.Decoder(ChatItem)
TITLE_CHARS = 80


@dataclass(frozen=True)
class SessionSummary:
    session_id: str
    title: str | None  # the first user message, cut to TITLE_CHARS
    created_at: datetime
    updated_at: datetime  # when its latest item was stored
    last_seq: int


class SessionStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def create(self, tenant: str) -> str:
        session_id = "s" + secrets.token_hex(12)
        await self.pool.execute(
            "INSERT INTO gateway.sessions (session_id, tenant) VALUES ($1, $2)",
            session_id,
            tenant,
        )
        return session_id

    async def belongs_to(self, session_id: str, tenant: str) -> bool:
        owner = await self.pool.fetchval(
            "SELECT tenant FROM gateway.sessions WHERE session_id = $1", session_id
        )
        return owner == tenant

    async def of_tenant(self, tenant: str, limit: int) -> list[SessionSummary]:
        """The tenant's sessions with items, the most recently active first (a session
        opened but never written to is left out)."""
        rows = await self.pool.fetch(
            "SELECT s.session_id, s.created_at, "
            "  latest.seq AS last_seq, latest.created_at AS updated_at, "
            "  left(first_user.body->>'content', $3) AS title "
            "FROM gateway.sessions s "
            "JOIN LATERAL (SELECT seq, created_at FROM gateway.session_items i "
            "  WHERE i.session_id = s.session_id ORDER BY seq DESC LIMIT 1) latest ON true "
            "LEFT JOIN LATERAL (SELECT body FROM gateway.session_items i "
            "  WHERE i.session_id = s.session_id AND kind = 'user' "
            "  ORDER BY seq LIMIT 1) first_user ON true "
            "WHERE s.tenant = $1 "
            "ORDER BY updated_at DESC, s.session_id LIMIT $2",
            tenant,
            limit,
            TITLE_CHARS,
        )
        return [SessionSummary(**dict(row)) for row in rows]

    async def append(self, session_id: str, item: ChatItem) -> ChatItem:
        """Store the item as the session's next one; returns it with its seq."""
        async with self.pool.acquire() as connection, connection.transaction():
            await connection.execute("SELECT pg_advisory_xact_lock(hashtext($1))", session_id)
            seq = await connection.fetchval(
                "SELECT COALESCE(max(seq), 0) + 1 FROM gateway.session_items WHERE session_id = $1",
                session_id,
            )
            numbered = msgspec.structs.replace(item, seq=seq)
            await connection.execute(
                "INSERT INTO gateway.session_items (session_id, seq, kind, run_id, body) "
                "VALUES ($1, $2, $3, $4, $5::jsonb)",
                session_id,
                seq,
                numbered.kind,
                numbered.run_id,
                msgspec.json.encode(numbered).decode(),
            )
        return numbered

    async def last_seq(self, session_id: str) -> int:
        return await self.pool.fetchval(
            "SELECT COALESCE(max(seq), 0) FROM gateway.session_items WHERE session_id = $1",
            session_id,
        )

    async def items_after(self, session_id: str, seq: int) -> list[ChatItem]:
        rows = await self.pool.fetch(
            "SELECT body::text FROM gateway.session_items "
            "WHERE session_id = $1 AND seq > $2 ORDER BY seq",
            session_id,
            seq,
        )
        return [_item_decoder.decode(row[0]) for row in rows]

    async def has_run(self, session_id: str, run_id: str) -> bool:
        found = await self.pool.fetchval(
            "SELECT 1 FROM gateway.session_items WHERE session_id = $1 AND run_id = $2 LIMIT 1",
            session_id,
            run_id,
        )
        return found is not None
