"""Chat sessions in Postgres: who owns each, and its items numbered per session from 1.

A session belongs to a tenant and to the user who opened it (`Principal.owner`). Reads
take an owner scope: None for every session of the tenant (an admin), else that owner's
only; a session opened before owners were kept has none, so only admins see it.

An item's body is its whole `ChatItem` frame as JSON, so a replay sends exactly what the
live socket got. Numbers are taken in the insert itself; the primary key keeps two
replicas appending to one session at once from taking the same seq (the second appends
again, in turn under the session's lock).
A run's items are stored once each: an item already there (stored by another replica
following the same run, or before a restart) is skipped, so a replay of a run never
doubles one nor leaves a hole in the numbers.
"""

from __future__ import annotations

import contextlib
import secrets
from dataclasses import dataclass
from datetime import datetime

import asyncpg
import msgspec

from revo_contracts.chat import ChatItem
from revo_contracts.runs import TERMINAL_EVENT_TYPES

_item_decoder = msgspec.json.Decoder(ChatItem)
_encode = msgspec.json.Encoder().encode
APPEND_ATTEMPTS = 5
# The stored body is the item's frame with its seq set here, where the seq is chosen. Items
# of a run already stored (its run_id, kind and run_seq: schema.sql) are left out before
# numbering; one stored meanwhile by another replica fails the unique index, and the retry
# leaves it out.
_APPEND_SQL = """
WITH fresh AS (
    SELECT t.kind, t.run_id, t.run_seq, t.body, t.n,
           row_number() OVER (ORDER BY t.n) AS m
    FROM unnest($2::text[], $3::text[], $4::int[], $5::text[])
         WITH ORDINALITY AS t(kind, run_id, run_seq, body, n)
    WHERE t.run_id IS NULL OR NOT EXISTS (
        SELECT 1 FROM gateway.session_items i
        WHERE i.run_id = t.run_id AND i.kind = t.kind AND i.run_seq = t.run_seq)
), last AS (
    SELECT COALESCE(max(seq), 0) AS seq FROM gateway.session_items WHERE session_id = $1
), stored AS (
    INSERT INTO gateway.session_items (session_id, seq, kind, run_id, run_seq, body)
    SELECT $1, last.seq + fresh.m, fresh.kind, fresh.run_id, fresh.run_seq,
           jsonb_set(fresh.body::jsonb, '{seq}', to_jsonb(last.seq + fresh.m))
    FROM last, fresh
    RETURNING seq
)
SELECT stored.seq, fresh.n FROM stored, last, fresh
WHERE fresh.m = stored.seq - last.seq ORDER BY stored.seq
"""
_SESSION_LOCK_SQL = "SELECT pg_advisory_xact_lock(hashtextextended('gateway.session ' || $1, 0))"
TITLE_CHARS = 80


@dataclass(frozen=True)
class SessionSummary:
    session_id: str
    title: str | None  # the first user message, cut to TITLE_CHARS
    created_at: datetime
    updated_at: datetime  # when its latest item was stored
    last_seq: int


@dataclass(frozen=True)
class OpenRun:
    """A run of a session whose end is not stored: its replica may have stopped following it."""

    session_id: str
    tenant: str
    run_id: str
    agent: str
    age_s: float  # since its user message was stored


def run_seq_of(item: ChatItem) -> int:
    """Which of its run's items this is (schema.sql): an event's seq, else 0 (a run has one
    user item and at most one assistant item)."""
    return item.event.seq if item.kind == "event" and item.event is not None else 0


class SessionStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def create(self, tenant: str, owner: str) -> str:
        session_id = "s" + secrets.token_hex(12)
        await self.pool.execute(
            "INSERT INTO gateway.sessions (session_id, tenant, owner) VALUES ($1, $2, $3)",
            session_id,
            tenant,
            owner,
        )
        return session_id

    async def visible(self, session_id: str, tenant: str, owner: str | None) -> bool:
        """Whether the session is the tenant's and, with an owner, that owner's."""
        found = await self.pool.fetchval(
            "SELECT 1 FROM gateway.sessions WHERE session_id = $1 AND tenant = $2 "
            "AND ($3::text IS NULL OR owner = $3)",
            session_id,
            tenant,
            owner,
        )
        return found is not None

    async def of_tenant(self, tenant: str, owner: str | None, limit: int) -> list[SessionSummary]:
        """The tenant's sessions with items (with an owner, that owner's only), the most
        recently active first (a session opened but never written to is left out)."""
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
            "WHERE s.tenant = $1 AND ($4::text IS NULL OR s.owner = $4) "
            "ORDER BY updated_at DESC, s.session_id LIMIT $2",
            tenant,
            limit,
            TITLE_CHARS,
            owner,
        )
        return [SessionSummary(**dict(row)) for row in rows]

    async def append(self, session_id: str, items: list[ChatItem]) -> list[ChatItem]:
        """Store the items as the session's next ones, in order; returns those stored,
        numbered (an item of a run that is stored already is left out).

        One statement (one round trip): it numbers the items after the session's last seq.
        Two replicas appending to one session at once may pick the same numbers, or store
        the same item of a run they both follow: the unique indexes refuse the second,
        which appends again in turn with the others that collided."""
        args = (
            session_id,
            [item.kind for item in items],
            [item.run_id for item in items],
            [run_seq_of(item) for item in items],
            [_encode(item).decode() for item in items],
        )
        try:
            rows = await self.pool.fetch(_APPEND_SQL, *args)
        except asyncpg.UniqueViolationError:
            rows = await self._append_in_turn(args)
        return [msgspec.structs.replace(items[n - 1], seq=seq) for seq, n in rows]

    async def _append_in_turn(self, args: tuple) -> list[asyncpg.Record]:
        """Append holding the session's lock (until the commit), as every replica does once
        it collided: the statement's snapshot then has what the others stored. Retrying the
        one statement alone may lose again and again to a replica storing item after item
        of a run both follow; now only a first try of another replica can come between."""
        for _ in range(APPEND_ATTEMPTS - 1):
            with contextlib.suppress(asyncpg.UniqueViolationError):
                return await self._append_locked(args)
        return await self._append_locked(args)

    async def _append_locked(self, args: tuple) -> list[asyncpg.Record]:
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(_SESSION_LOCK_SQL, args[0])
            return await conn.fetch(_APPEND_SQL, *args)

    async def open_runs(self, within_s: float) -> list[OpenRun]:
        """The runs of every session whose user message was stored in the last `within_s`
        seconds and whose ending (a terminal event item) is not stored, oldest first."""
        rows = await self.pool.fetch(
            "SELECT u.session_id, s.tenant, u.run_id, u.body->>'agent' AS agent, "
            "  extract(epoch FROM now() - u.created_at)::float8 AS age_s "
            "FROM gateway.session_items u JOIN gateway.sessions s USING (session_id) "
            "WHERE u.kind = 'user' AND u.run_id IS NOT NULL "
            "  AND u.created_at > now() - make_interval(secs => $1) "
            "  AND NOT EXISTS (SELECT 1 FROM gateway.session_items e "
            "    WHERE e.run_id = u.run_id AND e.kind = 'event' "
            "    AND e.body->'event'->>'type' = ANY($2::text[])) "
            "ORDER BY u.created_at",
            within_s,
            sorted(TERMINAL_EVENT_TYPES),
        )
        return [OpenRun(**dict(row)) for row in rows]

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
