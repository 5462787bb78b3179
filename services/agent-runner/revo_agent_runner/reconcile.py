"""Reconciling: a run's row brought to the end its event log holds.

`runs.api.get` and `list` read a run's row; its event log is what happened. An event and
the row's summary are written in one statement, so they agree, except where an attempt
that should not have written did: before writes to an ended row were refused
(event_writer.py), an attempt cut off from NATS wrote `running` over the row another
attempt had ended (docs/chaos.md, defect 4). Such a row's delivery is acked: nothing
would look at it again.

So each replica looks, once at start and every `reconcile_interval_s`: a row not ended
whose claim is stale (no owner, or its lease ran out) and whose log holds an end takes that
end (status, answer or error, steps, tokens), with the events Postgres lacked. Postgres's
copy of the log is read first; then RUN_EVENTS, as a follower reads it (each seq once, in
order, to the first end). A row with no end in its log is left alone: its delivery comes
back and resumes it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Container

import msgspec
from nats.js.errors import NotFoundError

from revo_agent_runner import metrics
from revo_agent_runner.event_writer import EventWriter
from revo_agent_runner.replay import RunState
from revo_agent_runner.store import RunStore
from revo_contracts import subjects
from revo_contracts.runs import RunEvent
from revo_contracts.streams import RUN_EVENTS
from revo_core.bus import Bus
from revo_core.codec import UNREADABLE
from revo_core.logging import get_logger
from revo_core.periodic import Periodic
from revo_core.runs import is_terminal

log = get_logger("revo.agent_runner.reconcile")
_event_decoder = msgspec.json.Decoder(RunEvent)
# Rows looked at per pass; more wait for the next one.
PASS_LIMIT = 500


class Reconciler:
    def __init__(
        self,
        bus: Bus,
        store: RunStore,
        writer: EventWriter,
        interval_s: float,
        running_here: Container[str],
    ) -> None:
        self.bus = bus
        self.store = store
        self.writer = writer
        self.interval_s = interval_s
        # Runs this replica executes now: their lease may lapse between heartbeats.
        self.running_here = running_here
        self._passes = Periodic("reconcile-runs", interval_s, self.reconcile)

    def start(self) -> None:
        self._passes.start()

    async def stop(self) -> None:
        await self._passes.stop()

    async def reconcile(self) -> int:
        """One pass; how many rows took their log's end."""
        settled = 0
        for run_id, tenant in await self.store.stale_runs(PASS_LIMIT):
            if run_id not in self.running_here and await self._settle(run_id, tenant):
                settled += 1
        return settled

    async def _settle(self, run_id: str, tenant: str) -> bool:
        # Up to the first end: a stale attempt may have written past it.
        events = _to_first_end(await self.store.events(run_id))
        if not RunState.from_events(events).ended:
            events = _to_first_end(await self._stream_log(tenant, run_id))
        state = RunState.from_events(events)
        if not state.ended:
            return False
        if not await self.writer.write(events, state.progress()):
            return False  # it ended meanwhile
        metrics.RUNS_RECONCILED.labels(state.status).inc()
        log.warning("run row brought to its log's end", run_id=run_id, status=state.status)
        return True

    async def _stream_log(self, tenant: str, run_id: str) -> list[RunEvent]:
        """The run's events in RUN_EVENTS as a follower sees them: the first of each seq,
        from 1 in order, up to the first gap."""
        subject = subjects.runs_events(tenant, run_id)
        by_seq: dict[int, RunEvent] = {}
        stream_seq = 1
        while True:
            try:
                stored = await self.bus.js.get_msg(
                    RUN_EVENTS.name, seq=stream_seq, subject=subject, next=True
                )
            except NotFoundError:
                break
            stream_seq = stored.seq + 1
            with contextlib.suppress(*UNREADABLE):
                event = _event_decoder.decode(stored.data)
                if event.run_id == run_id and event.tenant == tenant:
                    by_seq.setdefault(event.seq, event)
        events: list[RunEvent] = []
        while len(events) + 1 in by_seq:
            events.append(by_seq[len(events) + 1])
        return events


def _to_first_end(events: list[RunEvent]) -> list[RunEvent]:
    for index, event in enumerate(events):
        if is_terminal(event):
            return events[: index + 1]
    return events
