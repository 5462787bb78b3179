"""Each tenant's CI policy (what a failing CI event starts), kept in Postgres, and the
policy's verdict on one event."""

from __future__ import annotations

from fnmatch import fnmatchcase

import asyncpg
import msgspec

from revo_contracts.ci import FAILED_STATUSES, CiEvent
from revo_contracts.integrations import CiPolicy

_policy = msgspec.json.Decoder(CiPolicy)


class PolicyStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def get(self, tenant: str) -> CiPolicy:
        """The tenant's policy; the default one (CiPolicy()) when none was set."""
        row = await self.pool.fetchrow(
            "SELECT policy::text AS policy FROM integrations.ci_policies WHERE tenant = $1",
            tenant,
        )
        return CiPolicy() if row is None else _policy.decode(row["policy"])

    async def put(self, tenant: str, policy: CiPolicy) -> None:
        await self.pool.execute(
            """INSERT INTO integrations.ci_policies (tenant, policy) VALUES ($1, $2::jsonb)
               ON CONFLICT (tenant) DO UPDATE
               SET policy = EXCLUDED.policy, updated_at = now()""",
            tenant,
            msgspec.json.encode(policy).decode(),
        )


def verdict(policy: CiPolicy, event: CiEvent) -> str | None:
    """Why the policy starts no run for this event (a CI_RUNS outcome), or None: start one."""
    if event.status not in FAILED_STATUSES:
        return "not_failed"
    if not policy.enabled:
        return "disabled"
    if not _matches(policy.repositories, repository_name(event)):
        return "filtered"
    if not _matches(policy.branches, branch_of(event)):
        return "filtered"
    return None


def repository_name(event: CiEvent) -> str:
    return event.repository.full_name or event.repository.url


def branch_of(event: CiEvent) -> str:
    """The branch, from the event's own field or its git ref (refs/heads/<branch>)."""
    return event.branch or event.ref.removeprefix("refs/heads/")


def _matches(globs: list[str], value: str) -> bool:
    # Case-sensitive everywhere (fnmatchcase): a branch `Main` is not `main` on any OS.
    return not globs or any(fnmatchcase(value, glob) for glob in globs)
