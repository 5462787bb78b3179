"""Writes a batch of usage rows in one transaction: each event once, whatever was before.

The rows are COPYed (binary) into a per-connection temporary table, then one statement
inserts those whose event_id is new (ON CONFLICT DO NOTHING: a redelivered or republished
event is a no-op), adds the new ones to `usage_daily`, and closes the holds of their
requests. Nothing is acked before this commits, so a crash at any point leaves either the
whole batch recorded or none of it, and the redelivery of a recorded event changes nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

import asyncpg

from revo_core.logging import get_logger
from revo_cost_ledger.usage_rows import COLUMNS

log = get_logger("revo.cost_ledger.recorder")

_COLUMN_LIST = ", ".join(COLUMNS)
# One round trip: every round trip of a batch waits for the busy event loop to come back.
_BEGIN = (
    "BEGIN; CREATE TEMP TABLE IF NOT EXISTS usage_in (LIKE ledger.usage INCLUDING DEFAULTS) "
    "ON COMMIT DELETE ROWS"
)
_WRITE = f"""
WITH ins AS (
    INSERT INTO ledger.usage ({_COLUMN_LIST})
    SELECT {_COLUMN_LIST} FROM usage_in ORDER BY event_id
    ON CONFLICT (event_id) DO NOTHING
    RETURNING event_id, tenant, api_key_id, request_id, day, model, provider, kind,
              prompt_tokens, completion_tokens, cost_pico, cloud_pico, priced
), daily AS (
    INSERT INTO ledger.usage_daily AS d (tenant, day, api_key_id, model, provider, kind, shard,
        events, prompt_tokens, completion_tokens, cost_pico, cloud_pico, unpriced_events)
    SELECT tenant, day, coalesce(api_key_id, ''), model, provider, kind, $2::smallint, count(*),
           sum(prompt_tokens), sum(completion_tokens), sum(cost_pico), sum(cloud_pico),
           count(*) FILTER (WHERE NOT priced)
      FROM ins GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 2, 3, 4, 5, 6
    ON CONFLICT (tenant, day, api_key_id, model, provider, kind, shard) DO UPDATE SET
        events = d.events + EXCLUDED.events,
        prompt_tokens = d.prompt_tokens + EXCLUDED.prompt_tokens,
        completion_tokens = d.completion_tokens + EXCLUDED.completion_tokens,
        cost_pico = d.cost_pico + EXCLUDED.cost_pico,
        cloud_pico = d.cloud_pico + EXCLUDED.cloud_pico,
        unpriced_events = d.unpriced_events + EXCLUDED.unpriced_events
), closed AS (
    UPDATE ledger.holds h SET status = 'recorded', closed_at = now()
      FROM ins
     WHERE h.tenant = ins.tenant AND h.request_id = ins.request_id
       AND h.status IN ('held', 'settled')
)
SELECT count(*) AS inserted,
       coalesce(array_agg(DISTINCT tenant), '{{}}') AS tenants,
       coalesce(array_agg(event_id) FILTER (WHERE event_id = ANY($1::text[])), '{{}}') AS traced,
       coalesce(sum(prompt_tokens + completion_tokens) FILTER (WHERE provider = 'local'), 0)
           AS local_tokens,
       coalesce(sum(prompt_tokens + completion_tokens) FILTER (WHERE provider <> 'local'), 0)
           AS cloud_tokens,
       coalesce(sum(cost_pico), 0) AS cost_pico,
       coalesce(sum(cloud_pico), 0) AS cloud_pico
  FROM ins
"""
_RETRYABLE = (
    asyncpg.DeadlockDetectedError,
    asyncpg.SerializationError,
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.InterfaceError,
    OSError,
)


@dataclass
class BatchResult:
    inserted: int = 0
    # Tenants with new rows (their budgets are checked for alerts next).
    tenants: list[str] = field(default_factory=list)
    # The traced event ids (asked for by the caller) that were new.
    traced_inserted: set[str] = field(default_factory=set)
    local_tokens: int = 0
    cloud_tokens: int = 0
    cost_pico: int = 0
    cloud_pico: int = 0


class UsageRecorder:
    def __init__(self, pool: asyncpg.Pool, attempts: int = 3) -> None:
        self.pool = pool
        self.attempts = attempts

    async def record(
        self, rows: list[tuple], traced: Sequence[str] = (), shard: int = 0
    ) -> BatchResult:
        """Write `rows` (sorted by event_id, one per event id) into `shard` of the daily
        sums; retried a few times on a deadlock or a lost connection, then raised."""
        for attempt in range(1, self.attempts + 1):
            try:
                return await self._write(rows, list(traced), shard)
            except _RETRYABLE as exc:
                if attempt == self.attempts:
                    raise
                log.warning("usage batch write failed; retrying", attempt=attempt, error=str(exc))
                await asyncio.sleep(0.05 * 2**attempt)
        raise AssertionError("unreachable")

    async def _write(self, rows: list[tuple], traced: list[str], shard: int) -> BatchResult:
        async with self.pool.acquire() as conn:
            await conn.execute(_BEGIN)
            try:
                await conn.copy_records_to_table("usage_in", records=rows, columns=COLUMNS)
                written = await conn.fetchrow(_WRITE, traced, shard)
                await conn.execute("COMMIT")
            except BaseException:
                await _rollback(conn)
                raise
        return BatchResult(
            inserted=written["inserted"],
            tenants=list(written["tenants"]),
            traced_inserted=set(written["traced"]),
            local_tokens=int(written["local_tokens"]),
            cloud_tokens=int(written["cloud_tokens"]),
            cost_pico=int(written["cost_pico"]),
            cloud_pico=int(written["cloud_pico"]),
        )


async def _rollback(conn: asyncpg.Connection) -> None:
    """Leave no transaction open on a connection going back to the pool; one that cannot
    even roll back is closed."""
    try:
        await asyncio.shield(conn.execute("ROLLBACK"))
    except Exception:
        conn.terminate()
