"""A run's event log: each event is written to Postgres, then published to RUN_EVENTS.

Appending is not waiting. Events go into the run's own pipeline, which writes them to
Postgres (through the replica's group-commit EventWriter, several at once when several
are waiting) and then publishes them, in order. The run goes on meanwhile: a model call
overlaps the write of the step before it. Where the run must know its log is durable it
says so with `flush()`: before a tool with side effects runs (so a resumed run knows the
call was made), and before the run is acked.

Postgres first: a resumed run continues from what Postgres holds, and an event is never
published before it is there, so the stream never holds an event Postgres lacks. An event
written but not published (the runner died in between) is published when the run resumes;
the stream's Nats-Msg-Id `<run>:<seq>` and followers' seq check drop repeats.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
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


@dataclass
class _Pending:
    event: RunEvent
    publish: bool
    # The run's summary as of this event, written with it.
    progress: Progress
    appended_at: float


class EventLogFailed(Exception):
    """The run's events could not be written (Postgres or NATS down): the run stops here and
    is retried from what was written."""


class RunEndedElsewhere(Exception):
    """The run's row had ended when this attempt wrote to it: another attempt ended it (or
    a replica brought the row to its log's end), and this attempt must stop, publishing
    nothing more."""


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
        self._queue: list[_Pending] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._pipeline: asyncio.Task[None] | None = None
        self._error: Exception | None = None
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
            log._append(_queued(submit), publish=False)
            return log
        log = cls(bus, writer, submit, await store.events(submit.run_id))
        published = await log._last_published_seq()
        for event in log.events:
            if event.seq > published:
                await log._publish(event)
        if not log.events:
            log._append(_queued(submit), publish=published < 1)
        return log

    @property
    def ended_elsewhere(self) -> bool:
        return isinstance(self._error, RunEndedElsewhere)

    async def write_summary(self) -> None:
        """Write the row's summary again from the log as loaded (its last event, already in
        Postgres, is ignored): for a row that does not say what its log does."""
        if self.events:
            await self.writer.write(self.events[-1:], self.state.progress())

    @property
    def seq(self) -> int:
        return self.events[-1].seq if self.events else 0

    async def emit(self, event_type: type[Any], **fields: Any) -> Any:
        """Append the next event; it is written and published in the background."""
        if self._error is not None:
            raise EventLogFailed(str(self._error)) from self._error
        event = event_type(
            run_id=self.run_id, tenant=self.tenant, seq=self.seq + 1, ts=time.time(), **fields
        )
        self._append(event, publish=True)
        return event

    async def flush(self) -> None:
        """Return once every event appended so far is in Postgres and published."""
        await self._idle.wait()
        if self._error is not None:
            raise EventLogFailed(str(self._error)) from self._error

    async def close(self) -> None:
        """Write what is left (errors are logged: the run is retried from what was written)."""
        with contextlib.suppress(EventLogFailed):
            await self.flush()
        if self._pipeline is not None:
            self._pipeline.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pipeline

    async def confirm_published(self, timeout: float = 5.0) -> None:
        """Make sure the stream holds every event published so far; publish again (waiting
        for the ack this time) any whose ack failed or did not come."""
        await self.flush()
        unconfirmed, self._unconfirmed = self._unconfirmed, []
        for event, ack in unconfirmed:
            try:
                await asyncio.wait_for(ack, timeout)
            except Exception as exc:
                log.warning("event not confirmed; publishing again", seq=event.seq, error=str(exc))
                await self._publish(event)

    # -- the pipeline --------------------------------------------------------------------

    def _append(self, event: RunEvent, publish: bool) -> None:
        self.state.apply(event)
        self.events.append(event)
        self._queue.append(_Pending(event, publish, self.state.progress(), time.perf_counter()))
        self._idle.clear()
        self._wake.set()
        if self._pipeline is None:
            self._pipeline = asyncio.create_task(self._drain(), name=f"events {self.run_id}")

    async def _drain(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                batch, self._queue = self._queue, []
                try:
                    await self._write(batch)
                except Exception as exc:
                    if not isinstance(exc, RunEndedElsewhere):
                        log.error("writing run events failed", run_id=self.run_id, error=str(exc))
                    self._error = exc
                    self._queue.clear()
                    self._idle.set()
                    return
            self._idle.set()

    async def _write(self, batch: list[_Pending]) -> None:
        if not await self.writer.write([p.event for p in batch], batch[-1].progress):
            raise RunEndedElsewhere(f"run {self.run_id} had ended when this attempt wrote to it")
        for pending in batch:
            if pending.publish:
                ack = await self.bus.js_publish_nowait(
                    self.subject, pending.event, msg_id=self._msg_id(pending.event)
                )
                self._unconfirmed.append((pending.event, ack))
            metrics.EVENT_WRITE_SECONDS.observe(time.perf_counter() - pending.appended_at)

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


def _queued(submit: RunSubmit) -> RunQueued:
    return RunQueued(
        run_id=submit.run_id,
        tenant=submit.tenant,
        seq=1,
        ts=submit.submitted_at or time.time(),
        agent=submit.agent,
    )
