"""Shared helpers of the agent-runner tests."""

from __future__ import annotations

import asyncio
from typing import Any

from revo_contracts.runs import RunLimits, RunSubmit, TokenDelta, Workspace
from revo_core.bus import Bus
from revo_core.runs import RunFollower, event_type, new_run_id, submit_run


def new_submit(agent: str = "scripted", task: str = "do the thing", **fields: Any) -> RunSubmit:
    fields.setdefault("tenant", "acme")
    limits = fields.pop("limits", None) or RunLimits()
    repo = fields.pop("repo", None)
    if repo is not None:
        fields["workspace"] = Workspace(repo=str(repo), ref=fields.pop("ref", None))
    return RunSubmit(run_id=new_run_id(), agent=agent, task=task, limits=limits, **fields)


class RunRecord:
    def __init__(self) -> None:
        self.events: list[Any] = []
        self.tokens: list[TokenDelta] = []

    @property
    def types(self) -> list[str]:
        return [event_type(e) for e in self.events]

    @property
    def last(self) -> Any:
        return self.events[-1]

    def of_type(self, name: str) -> list[Any]:
        return [e for e in self.events if event_type(e) == name]


async def follow(bus: Bus, submit: RunSubmit, record: RunRecord) -> RunRecord:
    async with RunFollower(bus, submit.tenant, submit.run_id) as follower:
        async for item in follower:
            if isinstance(item, TokenDelta):
                record.tokens.append(item)
            else:
                record.events.append(item)
    return record


async def run_to_end(bus: Bus, submit: RunSubmit, timeout: float = 30.0) -> RunRecord:
    """Submit, follow until the run's last event, return everything seen."""
    record = RunRecord()
    async with RunFollower(bus, submit.tenant, submit.run_id) as follower:
        await submit_run(bus, submit)

        async def collect() -> None:
            async for item in follower:
                if isinstance(item, TokenDelta):
                    record.tokens.append(item)
                else:
                    record.events.append(item)

        await asyncio.wait_for(collect(), timeout)
    return record


async def wait_for_event(record: RunRecord, name: str, timeout: float = 20.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        found = record.of_type(name)
        if found:
            return found[-1]
        await asyncio.sleep(0.02)
    raise AssertionError(f"no {name} event within {timeout}s; saw {record.types}")
