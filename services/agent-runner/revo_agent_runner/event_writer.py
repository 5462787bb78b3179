"""Group commit of event-log writes: the events of every run of this replica go to Postgres
together, one statement per batch, instead of one round trip per event.

Each run waits for its own write before it publishes the event or takes its next step, so
the durability each run sees is unchanged; what changes is that 50 runs writing at once
cost one statement, not 50. A batch holds at most one write per run (a run has one write
in flight at a time), so the summary update per run is unambiguous.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

import asyncpg
import msgspec

from revo_agent_runner.store import Progress
from revo_contracts.runs import RunEvent
from revo_core.logging import get_logger

log = get_logger("revo.agent_runner.events")

MAX_BATCH = 512

_WRITE = """
WITH ev AS (
    INSERT INTO agents.events (run_id, seq, type, ts, body)
    SELECT * FROM unnest($1::text[], $2::integer[], $3::text[], $4::double precision[],
                         $5::jsonb[])
    ON CONFLICT DO NOTHING
)
UPDATE agents.runs AS r
   SET status = u.status, steps = u.steps, total_tokens = u.total_tokens,
       answer = coalesce(u.answer, r.answer), error_code = coalesce(u.error_code, r.error_code),
       error_reason = coalesce(u.error_reason, r.error_reason),
       ended_at = coalesce(u.ended_at, r.ended_at),
       owner = CASE WHEN u.ended_at IS NULL THEN r.owner END,
       lease_until = CASE WHEN u.ended_at IS NULL THEN r.lease_until END
  FROM unnest($6::text[], $7::text[], $8::integer[], $9::integer[], $10::text[], $11::text[],
              $12::text[], $13::double precision[])
       AS u(run_id, status, steps, total_tokens, answer, error_code, error_reason, ended_at)
 WHERE r.run_id = u.run_id
"""


@dataclass
class _Write:
    events: list[RunEvent]
    progress: Progress
    done: asyncio.Future[None]


class EventWriter:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self._queue: list[_Write] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="event-writer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for write in self._queue:
            if not write.done.done():
                write.done.set_exception(RuntimeError("event writer stopped"))

    async def write(self, events: list[RunEvent], progress: Progress) -> None:
        """Return once the events are in Postgres (repeats of a (run, seq) are ignored)."""
        done = asyncio.get_running_loop().create_future()
        self._queue.append(_Write(events, progress, done))
        self._wake.set()
        await done

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
                await self._flush(batch)

    async def _flush(self, batch: list[_Write]) -> None:
        try:
            await self.pool.execute(_WRITE, *_columns(batch))
        except Exception as exc:
            log.error(
                "writing run events failed",
                events=sum(len(w.events) for w in batch),
                error=str(exc),
            )
            for write in batch:
                if not write.done.done():
                    write.done.set_exception(exc)
            return
        for write in batch:
            if not write.done.done():
                write.done.set_result(None)


def _columns(batch: list[_Write]) -> tuple[list, ...]:
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
