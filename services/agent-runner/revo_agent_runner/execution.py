"""Executing one claimed run: its log, its attempt, its agent, its limits.

The consumer (runner.py) decides *whether* this replica runs a delivery; this module runs
it: opens the event log (resuming from it on a later attempt), answers early (a cancel sent
before, too many attempts, an unknown agent), prepares the workspace and history, and runs
the agent loop under the wall-time limit.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from nats.aio.msg import Msg

from revo_agent_runner import metrics
from revo_agent_runner.agents import AgentSpec
from revo_agent_runner.event_log import RunLog
from revo_agent_runner.event_writer import EventWriter
from revo_agent_runner.loop import AgentLoop, RunContext, RunStop, wall_time_left
from revo_agent_runner.model import ModelClient
from revo_agent_runner.prompting import history_messages
from revo_agent_runner.settings import AgentRunnerSettings
from revo_agent_runner.store import Claim, RunStore
from revo_agent_runner.workspace import WorkspaceError, prepare_workspace, remove_workspace
from revo_contracts.runs import Answer, Cancel, RunCancelled, RunFailed, RunStarted, RunSubmit
from revo_core.bus import Bus
from revo_core.tracing import internal_span


@dataclass
class ActiveRun:
    submit: RunSubmit
    msg: Msg
    task: asyncio.Task[None] | None = None
    cancel_reason: str | None = None
    lost_claim: bool = False
    log: RunLog | None = None
    live_answers: asyncio.Queue[str] = field(default_factory=asyncio.Queue)

    def cancel(self, reason: str) -> None:
        """Stop the run as cancelled; one still being claimed stops as it starts."""
        if self.cancel_reason is None:
            self.cancel_reason = reason or "cancelled"
            if self.task is not None:
                self.task.cancel()


class RunExecutor:
    def __init__(
        self,
        bus: Bus,
        store: RunStore,
        writer: EventWriter,
        agents: dict[str, AgentSpec],
        settings: AgentRunnerSettings,
    ) -> None:
        self.bus = bus
        self.store = store
        self.writer = writer
        self.agents = agents
        self.settings = settings
        self.model = ModelClient(bus)

    async def execute(self, run: ActiveRun, claim: Claim) -> None:
        """Run one attempt of a claimed run, from its log to its last event."""
        submit = run.submit
        run_log = await RunLog.open(
            self.bus, self.store, self.writer, submit, first_attempt=claim.attempt == 1
        )
        run.log = run_log
        if not run_log.state.ended:
            await self._attempt(run, claim, run_log)
        else:
            # Claimed though its log has ended: its row did not say so (a stale attempt of
            # an older runner wrote over it). It takes the log's end now.
            await run_log.write_summary()
        await run_log.confirm_published()
        await run_log.close()
        metrics.RUNS_ENDED.labels(submit.agent, run_log.state.status).inc()
        if submit.workspace is None:
            remove_workspace(self.settings.workspace_root, submit.run_id)  # empty: quick
        else:
            await asyncio.to_thread(remove_workspace, self.settings.workspace_root, submit.run_id)

    async def _attempt(self, run: ActiveRun, claim: Claim, run_log: RunLog) -> None:
        submit = run.submit
        attempt = claim.attempt
        metrics.RUNS_STARTED.labels(submit.agent, "resume" if attempt > 1 else "new").inc()
        await run_log.emit(RunStarted, runner_id=self.settings.runner_id, attempt=attempt)
        attributes = {
            "revo.run_id": submit.run_id,
            "revo.tenant": submit.tenant,
            "revo.agent": submit.agent,
            "revo.attempt": attempt,
        }
        with internal_span(f"run {submit.agent}", attributes):
            try:
                await self._agent_run(run, claim, run_log)
            except asyncio.CancelledError:
                if run.cancel_reason is None:
                    raise  # shutdown or lost claim: the run continues elsewhere
                await run_log.emit(RunCancelled, reason=run.cancel_reason)

    async def _agent_run(self, run: ActiveRun, claim: Claim, run_log: RunLog) -> None:
        submit = run.submit
        controls = await self.store.controls(submit.run_id) if claim.has_controls else []
        cancels = [c.reason for c in controls if isinstance(c, Cancel)]
        if run.cancel_reason is not None:  # a cancel that came while it was being claimed
            cancels.insert(0, run.cancel_reason)
        if cancels:
            await run_log.emit(RunCancelled, reason=cancels[0] or "cancelled before it started")
            return
        if claim.attempt > self.settings.max_attempts:
            await run_log.emit(
                RunFailed,
                code="gave_up",
                reason=f"started {claim.attempt} times; its runners kept stopping",
            )
            return
        agent = self.agents.get(submit.agent)
        if agent is None:
            await run_log.emit(
                RunFailed,
                code="not_found",
                reason=f"unknown agent {submit.agent!r}; known: {', '.join(sorted(self.agents))}",
            )
            return
        try:
            ctx = await self._context(run, run_log, agent, controls)
        except RunStop as stop:
            await run_log.emit(RunFailed, code=stop.code, reason=stop.reason)
            return
        left = wall_time_left(submit, run_log.state.first_started_at)
        try:
            async with asyncio.timeout(max(left, 0.0)) as deadline:
                await AgentLoop(ctx).run()
        except TimeoutError:
            if not deadline.expired():
                raise
            if run_log.state.ended:
                return
            await run_log.emit(
                RunFailed,
                code="limit_exceeded",
                reason=f"wall_time: the run took more than {submit.limits.wall_time_s:g} s",
            )

    async def _context(
        self, run: ActiveRun, run_log: RunLog, agent: AgentSpec, controls: list[Any]
    ) -> RunContext:
        submit = run.submit
        workspace = None
        if agent.uses_tools(submit.workspace is not None):
            try:
                workspace = await prepare_workspace(
                    self.settings.workspace_root, submit.run_id, submit.workspace
                )
            except WorkspaceError as exc:
                raise RunStop(exc.code, str(exc)) from None
        history = []
        if submit.session_id:
            turns = await self.store.session_turns(
                submit.tenant,
                submit.session_id,
                submit.submitted_at,
                self.settings.session_history_turns,
            )
            history = history_messages(turns)
        return RunContext(
            submit=submit,
            agent=agent,
            log=run_log,
            model=self.model,
            workspace=workspace,
            history=history,
            known_answers=[c.text for c in controls if isinstance(c, Answer)],
            live_answers=run.live_answers,
            max_tool_output_chars=self.settings.max_tool_output_chars,
            bus=self.bus,
            memory_timeout_s=self.settings.memory_timeout_s,
        )
