"""Group commit of event-log writes: the events of every run of this replica go to Postgres
together, one statement per batch, instead of one round trip per event.

Each run waits for its own write before it publishes the event or takes its next step, so
the durability each run sees is unchanged; what changes is that 50 runs writing at once
cost one statement, not 50. A batch holds at most one write per run (a run has one write
in flight at a time), so the summary update per run is unambiguous.

A run whose row has ended takes no more events: a write for it is refused (nothing of it
is stored) and its writer told, so an attempt that lost its run to another one (a
redelivery that ran while it was cut off) neither moves the row back from its end nor adds
a second end to the log.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
import msgspec

from revo_agent_runner.store import Progress
from revo_contracts.runs import RunEvent
from revo_core.group_commit import GroupCommit
from revo_core.logging import get_logger

log = get_logger("revo.agent_runner.events")

MAX_BATCH = 512

_WRITE = """
WITH open AS (
    SELECT run_id FROM agents.runs
     WHERE run_id = ANY($6::text[]) AND status NOT IN ('finished', 'failed', 'cancelled')
     ORDER BY run_id
       FOR UPDATE
), ev AS (
    INSERT INTO agents.events (run_id, seq, type, ts, body)
    SELECT e.* FROM unnest($1::text[], $2::integer[], $3::text[], $4::double precision[],
                           $5::jsonb[]) AS e(run_id, seq, type, ts, body)
     WHERE e.run_id IN (SELECT run_id FROM open)
    ON CONFLICT DO NOTHING
)
-- The summary is the log's, whole: an end's answer or error is the end's own.
UPDATE agents.runs AS r
   SET status = u.status, steps = u.steps, total_tokens = u.total_tokens,
       answer = u.answer, error_code = u.error_code, error_reason = u.error_reason,
       ended_at = u.ended_at,
       owner = CASE WHEN u.ended_at IS NULL THEN r.owner END,
       lease_until = CASE WHEN u.ended_at IS NULL THEN r.lease_until END
  FROM unnest($6::text[], $7::text[], $8::integer[], $9::integer[], $10::text[], $11::text[],
              $12::text[], $13::double precision[])
       AS u(run_id, status, steps, total_tokens, answer, error_code, error_reason, ended_at)
 WHERE r.run_id = u.run_id AND r.run_id IN (SELECT run_id FROM open)
RETURNING r.run_id
"""


@dataclass
class EventWrite:
    events: list[RunEvent]
    progress: Progress


class EventWriter:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self._group = GroupCommit(self._flush, "event-writer", MAX_BATCH)

    def start(self) -> None:
        self._group.start()

    async def stop(self) -> None:
        await self._group.stop()

    async def write(self, events: list[RunEvent], progress: Progress) -> bool:
        """Return once the events are in Postgres (repeats of a (run, seq) are ignored):
        True, or False when the run's row had ended already and nothing was written."""
        return await self._group.submit(EventWrite(events, progress))

    async def _flush(self, batch: list[EventWrite]) -> list[bool]:
        try:
            rows = await self.pool.fetch(_WRITE, *_columns(batch))
        except Exception as exc:
            events = sum(len(w.events) for w in batch)
            log.error("writing run events failed", events=events, error=str(exc))
            raise
        written = {row["run_id"] for row in rows}
        return [write.events[0].run_id in written for write in batch]


def _columns(batch: list[EventWrite]) -> tuple[list, ...]:
    events = [event for write in batch for event in write.events]
    latest = {write.events[0].run_id: write.progress for write in batch}
    progress = list(latest.values())
    return (
        [e.run_id for e in events],
        [e.seq for e in events],
        [type(e).__struct_config__.tag for e in events],
        [e.ts for e in events],
        [msgspec.json.encode(e).decode() for e in events],
        list(latest),
        [p.status for p in progress],
        [p.steps for p in progress],
        [p.total_tokens for p in progress],
        [p.answer for p in progress],
        [p.error_code for p in progress],
        [p.error_reason for p in progress],
        [p.ended_at for p in progress],
    )
