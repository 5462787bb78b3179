"""The `agents` schema: runs, their event logs and their control messages.

Postgres is the runner's source of truth for resuming a run (an event is written here
before it is published), and the copy `revo runs` reads after the streams' retention.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg
import msgspec

from revo_contracts.runs import (
    RunControl,
    RunEvent,
    RunListRequest,
    RunSubmit,
    RunSummary,
)

_event_decoder = msgspec.json.Decoder(RunEvent)
_control_decoder = msgspec.json.Decoder(RunControl)
_submit_decoder = msgspec.json.Decoder(RunSubmit)

TERMINAL_STATUSES = ("finished", "failed", "cancelled")


_SUMMARY_COLUMNS = (
    "run_id, tenant, agent, status, created_at, task, session_id, started_at, ended_at, "
    "attempts, steps, total_tokens, answer, error_code, error_reason"
)


@dataclass(frozen=True)
class Claim:
    attempt: int
    started_at: float
    # Whether a cancel or an answer was sent for the run before this attempt took it.
    has_controls: bool = False


@dataclass(frozen=True)
class Refusal:
    """Why a delivered run is not executed here: ended already, or alive elsewhere."""

    status: str | None
    owner: str | None
    tenant: str | None

    @property
    def ended(self) -> bool:
        return self.status in TERMINAL_STATUSES


@dataclass
class Progress:
    """The summary columns an event moves forward."""

    status: str = "running"
    steps: int = 0
    total_tokens: int = 0
    answer: str | None = None
    error_code: str | None = None
    error_reason: str | None = None
    ended_at: float | None = None


class RunStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def renew(self, run_id: str, runner_id: str, lease_s: float) -> bool:
        result = await self.pool.execute(
            "UPDATE agents.runs SET lease_until = now() + make_interval(secs => $3) "
            "WHERE run_id = $1 AND owner = $2",
            run_id,
            runner_id,
            lease_s,
        )
        return result.endswith(" 1")

    async def release(self, run_id: str, runner_id: str) -> None:
        """Give a run up (shutdown) so another replica may take it without waiting."""
        await self.pool.execute(
            "UPDATE agents.runs SET owner = NULL, lease_until = NULL "
            "WHERE run_id = $1 AND owner = $2",
            run_id,
            runner_id,
        )

    async def stale_runs(self, limit: int) -> list[tuple[str, str]]:
        """(run, tenant) of rows not ended whose claim is stale: no owner (handed back, or
        ended and moved back by a stale attempt) or a lease run out; oldest first."""
        rows = await self.pool.fetch(
            "SELECT run_id, tenant FROM agents.runs "
            "WHERE status NOT IN ('finished', 'failed', 'cancelled') "
            "AND (owner IS NULL OR lease_until < now()) ORDER BY created_at LIMIT $1",
            limit,
        )
        return [(row["run_id"], row["tenant"]) for row in rows]

    async def events(self, run_id: str, after_seq: int = 0) -> list[RunEvent]:
        rows = await self.pool.fetch(
            "SELECT body::text FROM agents.events WHERE run_id = $1 AND seq > $2 ORDER BY seq",
            run_id,
            after_seq,
        )
        return [_event_decoder.decode(row[0]) for row in rows]

    async def record_control(self, run_id: str, control: RunControl) -> None:
        await self.pool.execute(
            "INSERT INTO agents.controls (run_id, kind, body) VALUES ($1, $2, $3::jsonb)",
            run_id,
            type(control).__struct_config__.tag,
            msgspec.json.encode(control).decode(),
        )

    async def controls(self, run_id: str) -> list[RunControl]:
        rows = await self.pool.fetch(
            "SELECT body::text FROM agents.controls WHERE run_id = $1 ORDER BY id", run_id
        )
        return [_control_decoder.decode(row[0]) for row in rows]

    async def summary(
        self, run_id: str, tenant: str | None = None, owner: str | None = None
    ) -> RunSummary | None:
        row = await self.pool.fetchrow(
            f"SELECT {_SUMMARY_COLUMNS} FROM agents.runs "
            "WHERE run_id = $1 AND ($2::text IS NULL OR tenant = $2) "
            "AND ($3::text IS NULL OR submit->>'owner' = $3)",
            run_id,
            tenant,
            owner,
        )
        return _summary(row) if row else None

    async def list(self, request: RunListRequest) -> list[RunSummary]:
        rows = await self.pool.fetch(
            f"SELECT {_SUMMARY_COLUMNS} FROM agents.runs "
            "WHERE ($1::text IS NULL OR tenant = $1) AND ($2::text IS NULL OR status = $2) "
            "AND ($3::text IS NULL OR agent = $3) AND ($4::text IS NULL OR session_id = $4) "
            "AND ($6::text IS NULL OR submit->>'owner' = $6) "
            "ORDER BY created_at DESC LIMIT $5",
            request.tenant,
            request.status,
            request.agent,
            request.session_id,
            request.limit,
            request.owner,
        )
        return [_summary(row) for row in rows]

    async def session_turns(
        self, tenant: str, session_id: str, before: float, limit: int
    ) -> list[tuple[RunSubmit, str]]:
        """Earlier finished runs of a session, oldest first: (what was asked, the answer)."""
        rows = await self.pool.fetch(
            "SELECT submit::text, answer FROM agents.runs "
            "WHERE tenant = $1 AND session_id = $2 AND created_at < $3 AND status = 'finished' "
            "ORDER BY created_at DESC LIMIT $4",
            tenant,
            session_id,
            before,
            limit,
        )
        return [(_submit_decoder.decode(row[0]), row[1] or "") for row in reversed(rows)]


def _summary(row: Any) -> RunSummary:
    return RunSummary(**{key: value for key, value in dict(row).items() if value is not None})
