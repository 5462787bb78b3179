"""Claiming runs: the replica that takes a delivered run records itself as its owner.

A run is claimed when it is new, or its owner gave it up, or its owner's lease (renewed by
heartbeats) has run out: so a redelivered run whose runner is still alive is never executed
twice. Claims of runs delivered together are made in one statement (group commit).
"""

from __future__ import annotations

import time

import asyncpg
import msgspec

from revo_agent_runner.store import Claim, Refusal
from revo_contracts.runs import RunSubmit
from revo_core.group_commit import GroupCommit

_CLAIM = """
WITH input AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                         $6::jsonb[], $7::double precision[])
           AS i(run_id, tenant, agent, task, session_id, submit, created_at)
), claimed AS (
    INSERT INTO agents.runs (run_id, tenant, agent, status, task, session_id, submit,
                             created_at, started_at, owner, lease_until, attempts)
    SELECT run_id, tenant, agent, 'running', task, session_id, submit, created_at, $8, $9,
           now() + make_interval(secs => $10), 1
      FROM input
    ON CONFLICT (run_id) DO UPDATE
       SET owner = EXCLUDED.owner, lease_until = EXCLUDED.lease_until,
           attempts = agents.runs.attempts + 1, status = 'running',
           started_at = coalesce(agents.runs.started_at, EXCLUDED.started_at)
     WHERE agents.runs.tenant = EXCLUDED.tenant
       AND agents.runs.status NOT IN ('finished', 'failed', 'cancelled')
       AND (agents.runs.owner IS NULL OR agents.runs.owner = EXCLUDED.owner
            OR agents.runs.lease_until < now())
    RETURNING run_id, attempts, started_at
)
-- A data-modifying CTE's changes are invisible to the rest of the statement: `r` is the
-- row as it was, which is what a refused claim wants to report.
SELECT i.run_id, c.attempts, c.started_at,
       EXISTS (SELECT 1 FROM agents.controls x WHERE x.run_id = i.run_id) AS has_controls,
       r.status, r.owner, r.tenant
  FROM input i
  LEFT JOIN claimed c ON c.run_id = i.run_id
  LEFT JOIN agents.runs r ON r.run_id = i.run_id AND c.run_id IS NULL
"""


class Claims:
    def __init__(self, pool: asyncpg.Pool, runner_id: str, lease_s: float) -> None:
        self.pool = pool
        self.runner_id = runner_id
        self.lease_s = lease_s
        self._group = GroupCommit(self._flush, "run-claims", max_batch=256)

    def start(self) -> None:
        self._group.start()

    async def stop(self) -> None:
        await self._group.stop()

    async def claim(self, submit: RunSubmit) -> Claim | Refusal:
        return await self._group.submit(submit)

    async def _flush(self, submits: list[RunSubmit]) -> list[Claim | Refusal]:
        # One statement may not touch a row twice: a run delivered twice in one batch
        # (a redelivery racing the first delivery) is claimed in a statement of its own.
        results: dict[int, Claim | Refusal] = {}
        pending = list(range(len(submits)))
        while pending:
            seen: set[str] = set()
            this_round: list[int] = []
            later: list[int] = []
            for index in pending:
                run_id = submits[index].run_id
                (later if run_id in seen else this_round).append(index)
                seen.add(run_id)
            claimed = await self._claim([submits[index] for index in this_round])
            for index in this_round:
                results[index] = claimed[submits[index].run_id]
            pending = later
        return [results[index] for index in range(len(submits))]

    async def _claim(self, submits: list[RunSubmit]) -> dict[str, Claim | Refusal]:
        now = time.time()
        rows = await self.pool.fetch(
            _CLAIM,
            [s.run_id for s in submits],
            [s.tenant for s in submits],
            [s.agent for s in submits],
            [s.task for s in submits],
            [s.session_id for s in submits],
            [msgspec.json.encode(s).decode() for s in submits],
            [s.submitted_at or now for s in submits],
            now,
            self.runner_id,
            self.lease_s,
        )
        return {row["run_id"]: _outcome(row) for row in rows}


def _outcome(row: asyncpg.Record) -> Claim | Refusal:
    if row["attempts"] is not None:
        return Claim(row["attempts"], row["started_at"], row["has_controls"])
    return Refusal(row["status"], row["owner"], row["tenant"])
