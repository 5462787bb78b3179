"""The WHERE clauses of scopes and filters, with numbered parameters.

Built per request from what it names, so Postgres plans each shape with the conditions it
really has (a tenant with a kind filter, a user's scope...) instead of one generic plan
full of `$n IS NULL OR ...`.
"""

from __future__ import annotations

import datetime
from typing import Any

from revo_contracts.memory import MemoryFilter, MemoryScope

SCOPE_FIELDS = (("repository", "repository"), ("agent", "agent"), ("user", "user_id"))


class Where:
    """Conditions joined by AND; `param(value)` adds a parameter and returns its `$n`."""

    def __init__(self, args: list[Any] | None = None) -> None:
        self.args: list[Any] = args if args is not None else []
        self.conditions: list[str] = []

    def param(self, value: Any) -> str:
        self.args.append(value)
        return f"${len(self.args)}"

    def add(self, condition: str) -> None:
        self.conditions.append(condition)

    def sql(self) -> str:
        return " AND ".join(self.conditions) or "true"


def visible_to(where: Where, scope: MemoryScope) -> None:
    """Memories a call in `scope` sees: the tenant's, whose every set scope field equals
    the call's (a field the call does not name only matches memories without it)."""
    where.add(f"m.tenant = {where.param(scope.tenant)}")
    for field, column in SCOPE_FIELDS:
        value = getattr(scope, field) or ""
        if value:
            where.add(f"m.{column} IN ('', {where.param(value)})")
        else:
            where.add(f"m.{column} = ''")


def narrowed_to(where: Where, scope: MemoryScope) -> None:
    """forget's reading of a scope: the tenant's memories, narrowed by each named field."""
    where.add(f"m.tenant = {where.param(scope.tenant)}")
    for field, column in SCOPE_FIELDS:
        value = getattr(scope, field)
        if value:
            where.add(f"m.{column} = {where.param(value)}")


def not_expired(where: Where) -> None:
    where.add("(m.expires_at IS NULL OR m.expires_at > now())")


def matching(where: Where, memory_filter: MemoryFilter | None) -> None:
    if memory_filter is None:
        return
    if memory_filter.kinds:
        where.add(f"m.kind = ANY({where.param(list(memory_filter.kinds))}::text[])")
    if memory_filter.tags:
        where.add(f"m.tags @> {where.param(list(memory_filter.tags))}::text[]")
    if memory_filter.since is not None:
        where.add(f"m.updated_at >= {where.param(_time(memory_filter.since))}")
    if memory_filter.until is not None:
        where.add(f"m.updated_at <= {where.param(_time(memory_filter.until))}")
    if memory_filter.source_run is not None:
        where.add(f"m.source_run = {where.param(memory_filter.source_run)}")


def _time(unix: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(unix, datetime.UTC)


def scope_of(row: Any) -> MemoryScope:
    return MemoryScope(
        tenant=row["tenant"],
        repository=row["repository"] or None,
        agent=row["agent"] or None,
        user=row["user_id"] or None,
    )
