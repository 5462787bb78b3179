"""The agents a client can talk to, as the agent-runner reports them (`runs.api.agents`).

Kept for a short while: `/v1/models` and the web page's agent picker ask often, and the
agents only change when the runners restart with another agents file. When no runner
answers, the last list seen is served; with none seen yet the caller gets a clear 503.
"""

from __future__ import annotations

import time

from revo_chat_gateway.http_errors import HttpError
from revo_contracts.runs import AgentInfo
from revo_core.bus import Bus
from revo_core.errors import RevoError
from revo_core.logging import get_logger
from revo_core.runs import list_agents

FRESH_FOR_S = 10.0
ASK_TIMEOUT_S = 2.0
log = get_logger("revo.chat_gateway.agents")


class AgentCatalog:
    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self._agents: list[AgentInfo] | None = None
        self._fetched_at = 0.0

    async def agents(self) -> list[AgentInfo]:
        if self._agents is not None and time.monotonic() - self._fetched_at < FRESH_FOR_S:
            return self._agents
        try:
            listed = await list_agents(self.bus, timeout=ASK_TIMEOUT_S)
        except RevoError as error:  # no responders, a timeout
            if self._agents is not None:
                log.warning("agent-runner did not list its agents; serving the last list")
                return self._agents
            raise HttpError(
                503, f"no agent-runner lists its agents: {error}", "overloaded"
            ) from None
        self._agents, self._fetched_at = listed.agents, time.monotonic()
        return self._agents
