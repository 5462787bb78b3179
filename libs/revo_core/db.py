"""Postgres for the services that keep state (agent-runner, ledger, memory, gateway).

One asyncpg pool per process. Each service owns one schema and applies its own idempotent
`schema.sql` at start-up, under an advisory lock so replicas starting together don't race.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable

import asyncpg

from revo_core.errors import RevoError
from revo_core.logging import get_logger

log = get_logger("revo.db")


class DatabaseUnavailable(RevoError):
    """Postgres could not be reached (wrong URL, server down, bad credentials)."""


# Postgres unreachable or restarting: a moment's unavailability (answered `overloaded`,
# retry), not a bug of the request (`internal`). Seen under bench/chaos.py.
DATABASE_AWAY: tuple[type[Exception], ...] = (
    ConnectionError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.InterfaceError,
)


async def connect_pool(
    dsn: str,
    min_size: int = 1,
    max_size: int = 10,
    attempts: int = 10,
    wait_s: float = 0.5,
    init: Callable[[asyncpg.Connection], Awaitable[None]] | None = None,
    server_settings: dict[str, str] | None = None,
) -> asyncpg.Pool:
    """A pool, retried for a few seconds: Postgres may still be starting next to us.
    `init` sets up each new connection (type codecs); `server_settings` are its GUCs."""
    last: Exception | None = None
    for attempt in range(1, attempts + 1):
        try:
            return await asyncpg.create_pool(
                dsn,
                min_size=min_size,
                max_size=max_size,
                command_timeout=30,
                reset=_keep_session,
                init=init,
                server_settings=server_settings,
            )
        except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
            last = exc
            log.warning("postgres not reachable yet", attempt=attempt, error=str(exc))
            await asyncio.sleep(wait_s)
    raise DatabaseUnavailable(
        f"cannot reach Postgres at {_without_password(dsn)}: {last}; "
        "is it running? `revo up` starts one"
    )


async def _keep_session(_: asyncpg.Connection) -> None:
    """Services keep no session state (no LISTEN, no session settings, no advisory locks
    outside transactions), so asyncpg's reset query on every release is a wasted round trip."""


async def apply_schema(pool: asyncpg.Pool, schema_sql: str) -> None:
    """Run an idempotent DDL script once at a time across replicas."""
    lock_key = int.from_bytes(hashlib.sha256(schema_sql.encode()).digest()[:8], "big", signed=True)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", lock_key)
        await conn.execute(schema_sql)


def _without_password(dsn: str) -> str:
    if "@" not in dsn or "://" not in dsn:
        return dsn
    scheme, rest = dsn.split("://", 1)
    credentials, host = rest.rsplit("@", 1)
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}@{host}"


class DatabaseWatch:
    """Answers /readyz's "is Postgres answering?" from a background probe every few seconds
    (readiness checks are synchronous, and a query per probe would be one per kubelet poll)."""

    def __init__(self, pool: asyncpg.Pool, every_s: float = 5.0) -> None:
        self.pool = pool
        self.every_s = every_s
        self.ok = True
        self._task: asyncio.Task[None] | None = None

    def start(self) -> DatabaseWatch:
        self._task = asyncio.create_task(self._watch(), name="database-watch")
        return self

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.every_s)
            try:
                await self.pool.fetchval("SELECT 1", timeout=2)
            except Exception as exc:
                if self.ok:
                    log.error("postgres stopped answering", error=str(exc))
                self.ok = False
            else:
                self.ok = True
