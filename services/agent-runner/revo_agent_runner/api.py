"""`runs.api.list` and `runs.api.get`: runs and their event logs, read from Postgres."""

from __future__ import annotations

from revo_agent_runner.store import RunStore
from revo_contracts.runs import RunDetail, RunGetRequest, RunListRequest, RunListResponse
from revo_core.errors import NotFound


class RunsApi:
    def __init__(self, store: RunStore) -> None:
        self.store = store

    async def list(self, request: RunListRequest) -> RunListResponse:
        return RunListResponse(runs=await self.store.list(request))

    async def get(self, request: RunGetRequest) -> RunDetail:
        summary = await self.store.summary(request.run_id, request.tenant)
        if summary is None:
            # The same answer for another tenant's run: its existence is not revealed.
            raise NotFound(f"no run {request.run_id!r}", {"run_id": request.run_id})
        return RunDetail(
            run=summary, events=await self.store.events(request.run_id, request.after_seq)
        )
