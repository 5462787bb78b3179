"""A run's event log: each event is written to Postgres, then published to RUN_EVENTS.

Postgres first (through the replica's group-commit EventWriter): a resumed run continues
from what Postgres holds. An event written there but not published (the runner died in
between) is published when the run resumes; the stream's Nats-Msg-Id `<run>:<seq>` and
followers' seq check drop repeats.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import msgspec
from nats.js.errors import NotFoundError

from revo_agent_runner import metrics
from revo_agent_runner.event_writer import EventWriter
from revo_agent_runner.replay import RunState
from revo_agent_runner.store import Progress, RunStore
from revo_contracts import subjects
from revo_contracts.runs import RunEvent, RunQueued, RunSubmit
from revo_contracts.streams import RUN_EVENTS
from revo_core.bus import Bus
from revo_core.logging import get_logger

_event_decoder = msgspec.json.Decoder(RunEvent)
log = get_logger("revo.agent_runner.events")


class RunLog:
    def __init__(
        self,
        bus: Bus,
        writer: EventWriter,
        submit: RunSubmit,
        events: list[RunEvent],
    ) -> None:
        self.bus = bus
        self.writer = writer
        self.run_id = submit.run_id
        self.tenant = submit.tenant
        self.subject = subjects.runs_events(submit.tenant, submit.run_id)
        self.events = list(events)
        self.state = RunState.from_events(events)
        self._writing: asyncio.Task[None] | None = None
        # Events to write to Postgres with the next one, without publishing them.
        self._unsaved: list[RunEvent] = []
        # Events published whose stream ack has not been checked yet.
        self._unconfirmed: list[tuple[RunEvent, asyncio.Future[Any]]] = []

    @classmethod
    async def open(
        cls, bus: Bus, store: RunStore, writer: EventWriter, submit: RunSubmit, first_attempt: bool
    ) -> RunLog:
        """The log of a run this replica just claimed.

        On a first attempt nothing can be in Postgres yet, and the submitter has published
        `queued` (seq 1): it is only copied to Postgres, with the next event. On a later
        attempt the log is loaded, and events the stream lacks (the runner died between
        Postgres and the publish) are published."""
        if first_attempt:
            log = cls(bus, writer, submit, [])
            log._unsaved.append(_queued(submit))
            return log
        log = cls(bus, writer, submit, await store.events(submit.run_id))
        published = await log._last_published_seq()
        if not log.events:
            await log._record(_queued(submit), publish=published < 1)
        for event in log.events:
            if event.seq > published:
                await log._publish(event)
        return log

    @property
    def seq(self) -> int:
        if self._unsaved:
            return self._unsaved[-1].seq
        return self.events[-1].seq if self.events else 0

    async def emit(self, event_type: type[Any], **fields: Any) -> Any:
        """Append the next event. A cancelled caller does not cut a write in half: the
        write goes on, and `settle()` waits for it before anything else is appended."""
        await self.settle()
        event = event_type(
            run_id=self.run_id, tenant=self.tenant, seq=self.seq + 1, ts=time.time(), **fields
        )
        self._writing = asyncio.create_task(self._record(event, publish=True))
        await asyncio.shield(self._writing)
        return event

    async def settle(self) -> None:
        if self._writing is not None and not self._writing.done():
            await asyncio.wait([self._writing])

    async def _record(self, event: RunEvent, publish: bool) -> None:
        started = time.perf_counter()
        batch, self._unsaved = [*self._unsaved, event], []
        for item in batch:
            self.state.apply(item)
            self.events.append(item)
        await self.writer.write(batch, self._progress())
        if publish:
            # Not waiting for the stream's ack here: the event is safe in Postgres, and
            # `confirm_published` checks every ack before the run is acked.
            ack = await self.bus.js_publish_nowait(self.subject, event, msg_id=self._msg_id(event))
            self._unconfirmed.append((event, ack))
        metrics.EVENT_WRITE_SECONDS.observe(time.perf_counter() - started)

    async def confirm_published(self, timeout: float = 5.0) -> None:
        """Make sure the stream holds every event published so far; publish again (waiting
        for the ack this time) any whose ack failed or did not come."""
        unconfirmed, self._unconfirmed = self._unconfirmed, []
        for event, ack in unconfirmed:
            try:
                await asyncio.wait_for(ack, timeout)
            except Exception as exc:
                log.warning("event not confirmed; publishing again", seq=event.seq, error=str(exc))
                await self._publish(event)

    async def _publish(self, event: RunEvent) -> None:
        # No span per event (the run's span covers them); the context still travels along.
        await self.bus.js_publish(self.subject, event, msg_id=self._msg_id(event), span=False)

    def _msg_id(self, event: RunEvent) -> str:
        return f"{self.run_id}:{event.seq}"

    async def _last_published_seq(self) -> int:
        try:
            msg = await self.bus.js.get_last_msg(RUN_EVENTS.name, self.subject)
        except NotFoundError:
            return 0
        return _event_decoder.decode(msg.data).seq

    def _progress(self) -> Progress:
        """The run's summary columns as of the last event."""
        state = self.state
        return Progress(
            status=state.status,
            steps=state.steps,
            total_tokens=state.total_tokens,
            answer=state.answer,
            error_code=state.error_code,
            error_reason=state.error_reason,
            ended_at=state.ended_at,
        )


def _queued(submit: RunSubmit) -> RunQueued:
    return RunQueued(
        run_id=submit.run_id,
        tenant=submit.tenant,
        seq=1,
        ts=submit.submitted_at or time.time(),
        agent=submit.agent,
    )
