"""`runs.api.list`, `runs.api.get` (runs and their event logs, read from Postgres) and
`runs.api.agents` (the agents this runner runs)."""

from __future__ import annotations

from revo_agent_runner.agents import AgentSpec
from revo_agent_runner.store import RunStore
from revo_contracts.runs import (
    AgentInfo,
    AgentListRequest,
    AgentListResponse,
    RunDetail,
    RunGetRequest,
    RunListRequest,
    RunListResponse,
)
from revo_core.errors import NotFound


class RunsApi:
    def __init__(self, store: RunStore, agents: dict[str, AgentSpec]) -> None:
        self.store = store
        self._agents = AgentListResponse(
            agents=[
                AgentInfo(name=name, description=spec.description, tools=tools_of(spec))
                for name, spec in sorted(agents.items())
            ]
        )

    async def agents(self, _: AgentListRequest) -> AgentListResponse:
        return self._agents

    async def list(self, request: RunListRequest) -> RunListResponse:
        return RunListResponse(runs=await self.store.list(request))

    async def get(self, request: RunGetRequest) -> RunDetail:
        summary = await self.store.summary(request.run_id, request.tenant, request.owner)
        if summary is None:
            # The same answer for another tenant's (or owner's) run: its existence is not
            # revealed.
            raise NotFound(f"no run {request.run_id!r}", {"run_id": request.run_id})
        return RunDetail(
            run=summary, events=await self.store.events(request.run_id, request.after_seq)
        )


def tools_of(agent: AgentSpec) -> list[str]:
    """Every tool the agent uses: its opening calls' (its recall before the first step
    among them) and those the model may call."""
    opening = [call.tool for call in agent.opening] + (["recall"] if agent.recall else [])
    return list(dict.fromkeys([*opening, *agent.tools]))
