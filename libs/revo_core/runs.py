"""Client side of runs, for everything that submits or watches them (CLI, gateway, CI).

Submitting publishes the `queued` event (seq 1) and then the run to the RUNS work queue;
following takes the run's events and token deltas as they are published, and reads its
event log (`runs.api.get`) for what it missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import msgspec
from nats.js.errors import NotFoundError

from revo_contracts import subjects
from revo_contracts.runs import (
    TERMINAL_EVENT_TYPES,
    AgentListRequest,
    AgentListResponse,
    Answer,
    Cancel,
    ControlAck,
    RunDetail,
    RunEvent,
    RunGetRequest,
    RunListRequest,
    RunListResponse,
    RunQueued,
    RunSubmit,
    TokenDelta,
)
from revo_contracts.streams import RUN_EVENTS, RUNS
from revo_core.bus import Bus
from revo_core.codec import UNREADABLE
from revo_core.errors import InvalidRequest, RequestTimeout
from revo_core.logging import get_logger

_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"
_event_decoder = msgspec.json.Decoder(RunEvent)
_token_decoder = msgspec.json.Decoder(TokenDelta)
_submit_decoder = msgspec.json.Decoder(RunSubmit)
_TOKENS_PREFIX = "runs.tokens."
log = get_logger("revo.runs")
_READ_LOG = object()  # queued by the gap timer: time to read the run's log


def new_run_id() -> str:
    """Time-ordered and unique: 'r' + 10 characters of milliseconds + 8 random ones."""
    value = (int(time.time() * 1000) << 40) | int.from_bytes(os.urandom(5), "big")
    chars = []
    for _ in range(18):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "r" + "".join(reversed(chars))


def event_type(event: Any) -> str:
    return type(event).__struct_config__.tag


def is_terminal(event: Any) -> bool:
    return event_type(event) in TERMINAL_EVENT_TYPES


async def submit_run(bus: Bus, submit: RunSubmit) -> None:
    """Queue a run. A run the agent-runner could not read (a field past its contract's
    bounds) or too large is refused here (InvalidRequest), before anything is published."""
    if not submit.submitted_at:
        submit.submitted_at = time.time()
    data = bus.encode(submit)  # refuses a run over NATS's payload limit first
    check_submit(data)
    size = len(data)
    if size > RUNS.max_msg_size:
        raise InvalidRequest(
            f"run of {size} bytes exceeds the {RUNS.max_msg_size}-byte limit of the RUNS stream",
            {"size": size, "max_msg_size": RUNS.max_msg_size},
        )
    queued = RunQueued(
        run_id=submit.run_id,
        tenant=submit.tenant,
        seq=1,
        ts=submit.submitted_at,
        agent=submit.agent,
    )
    await bus.js_publish(
        subjects.runs_events(submit.tenant, submit.run_id), queued, msg_id=f"{submit.run_id}:1"
    )
    await bus.js_publish(subjects.runs_submit(submit.tenant), submit, msg_id=submit.run_id)


def check_submit(data: bytes) -> None:
    """Decode a run as the agent-runner will: a Struct built in Python is not checked
    against its fields' constraints (a `user` over 256 characters) until then."""
    try:
        _submit_decoder.decode(data)
    except msgspec.ValidationError as exc:
        raise InvalidRequest(f"invalid run: {exc}") from None


class RunFollower:
    """Events and token deltas of one run, in one async iterator, ending after its last event.

    One core subscription on `runs.*.<tenant>.<run>` carries both, so the deltas of a step
    come before the event that ends it, as the runner sent them. Events come out once each
    and in seq order: one that arrives past a gap is held until the gap is filled from the
    run's log in the RUN_EVENTS stream, which is also read when nothing has come for a
    while (events lost in a NATS reconnect) and, with `replay`, on entering (a follower that
    starts after the run did). Token deltas are not replayable: to have them all, enter the
    follower before submitting (and pass replay=False: there is nothing to replay yet)."""

    # Waits before the run's log is read: past a gap, and when nothing comes at all.
    GAP_WAIT_S = 0.25
    IDLE_CHECK_S = 15.0

    def __init__(
        self, bus: Bus, tenant: str, run_id: str, tokens: bool = True, replay: bool = True
    ) -> None:
        self.bus = bus
        self.tenant = tenant
        self.run_id = run_id
        self.want_tokens = tokens
        self.replay = replay
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._subscription: Any = None
        self._last_seq = 0
        self._held: dict[int, RunEvent] = {}  # past a gap, by seq
        self._next_stream_seq = 1  # where the next read of the log starts
        self._gap_timer: asyncio.TimerHandle | None = None

    async def __aenter__(self) -> RunFollower:
        subject = (
            subjects.runs_feed(self.tenant, self.run_id)
            if self.want_tokens
            else subjects.runs_events(self.tenant, self.run_id)
        )
        self._subscription = await self.bus.nc.subscribe(subject, cb=self._on_message)
        if self.replay:
            await self._read_log()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._gap_timer is not None:
            self._gap_timer.cancel()
        if self._subscription is not None:
            with contextlib.suppress(Exception):  # the connection is closing already
                await self._subscription.unsubscribe()

    async def _on_message(self, msg: Any) -> None:
        try:
            if msg.subject.startswith(_TOKENS_PREFIX):
                self._queue.put_nowait(_token_decoder.decode(msg.data))
            else:
                self._take_event(_event_decoder.decode(msg.data))
        except UNREADABLE:
            pass  # not ours to judge: the runner's log keeps the event, read on a gap

    def _take_event(self, event: RunEvent) -> None:
        if event.tenant != self.tenant or event.run_id != self.run_id:
            # Defence in depth: the subject named this run; an event that names another
            # tenant or run was forged or misrouted, and never reaches the run's client.
            log.warning(
                "run event dropped: tenant_mismatch",
                subject_tenant=self.tenant,
                event_tenant=event.tenant,
                run_id=self.run_id,
                event_run_id=event.run_id,
            )
            return
        if event.seq <= self._last_seq:
            return  # seen already (republished after a runner's restart, or read from the log)
        self._held[event.seq] = event
        while self._last_seq + 1 in self._held:
            self._last_seq += 1
            self._queue.put_nowait(self._held.pop(self._last_seq))
        if self._held and self._gap_timer is None:  # a gap: read the log if it stays
            loop = asyncio.get_running_loop()
            self._gap_timer = loop.call_later(self.GAP_WAIT_S, self._queue.put_nowait, _READ_LOG)

    async def _read_log(self) -> None:
        """The run's events stored in RUN_EVENTS since the last read (one direct get each)."""
        subject = subjects.runs_events(self.tenant, self.run_id)
        while True:
            try:
                stored = await self.bus.js.get_msg(
                    RUN_EVENTS.name, seq=self._next_stream_seq, subject=subject, next=True
                )
            except NotFoundError:
                return  # no more
            except Exception as exc:  # NATS away for now: the live feed, or the next read
                log.debug("reading a run's log failed", run_id=self.run_id, error=str(exc))
                return
            self._next_stream_seq = stored.seq + 1
            with contextlib.suppress(*UNREADABLE):
                self._take_event(_event_decoder.decode(stored.data))

    def __aiter__(self) -> AsyncIterator[RunEvent | TokenDelta]:
        return self._items()

    async def _items(self) -> AsyncIterator[RunEvent | TokenDelta]:
        while True:
            item = await self._next()
            yield item
            if not isinstance(item, TokenDelta) and is_terminal(item):
                return

    async def _next(self) -> RunEvent | TokenDelta:
        while True:
            if not self._queue.empty():
                item = self._queue.get_nowait()
            else:
                try:
                    item = await asyncio.wait_for(self._queue.get(), self.IDLE_CHECK_S)
                except TimeoutError:
                    item = _READ_LOG
            if item is not _READ_LOG:
                return item
            self._gap_timer = None
            await self._read_log()


async def cancel_run(
    bus: Bus, run_id: str, reason: str = "", timeout: float = 2.0, actor: str | None = None
) -> ControlAck | None:
    """Ask for a run to stop. The replica holding the run acknowledges; None when no replica
    holds it now (queued, or ended): the cancel is recorded and applies when it is picked up.
    `actor` (who asked) goes to the audit log."""
    return await _control(bus, run_id, Cancel(reason=reason, actor=actor), timeout)


async def answer_run(bus: Bus, run_id: str, text: str, timeout: float = 2.0) -> ControlAck | None:
    return await _control(bus, run_id, Answer(text=text), timeout)


async def _control(bus: Bus, run_id: str, control: Any, timeout: float) -> ControlAck | None:
    try:
        return await bus.request(subjects.runs_control(run_id), control, ControlAck, timeout)
    except RequestTimeout:
        return None


async def list_agents(bus: Bus, timeout: float = 5.0) -> AgentListResponse:
    return await bus.request(subjects.RUNS_AGENTS, AgentListRequest(), AgentListResponse, timeout)


async def list_runs(bus: Bus, request: RunListRequest, timeout: float = 5.0) -> RunListResponse:
    return await bus.request(subjects.RUNS_LIST, request, RunListResponse, timeout)


async def get_run(bus: Bus, request: RunGetRequest, timeout: float = 5.0) -> RunDetail:
    return await bus.request(subjects.RUNS_GET, request, RunDetail, timeout)
