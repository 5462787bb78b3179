"""Client side of runs, for everything that submits or watches them (CLI, gateway, CI).

Submitting publishes the `queued` event (seq 1) and then the run to the RUNS work queue;
following reads the run's event log from RUN_EVENTS (from the start, so nothing is missed
whenever one starts following) and its token deltas from core NATS.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import msgspec
from nats.js.api import DeliverPolicy

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
from revo_contracts.streams import RUNS
from revo_core.bus import Bus
from revo_core.errors import InvalidRequest, RequestTimeout

_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"
_event_decoder = msgspec.json.Decoder(RunEvent)
_token_decoder = msgspec.json.Decoder(TokenDelta)


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
    """Queue a run. Too large a run is refused here (InvalidRequest) with its size."""
    if not submit.submitted_at:
        submit.submitted_at = time.time()
    size = len(bus.encode(submit))  # refuses a run over NATS's payload limit first
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


class RunFollower:
    """Events and token deltas of one run, in one async iterator, ending after its last event.

    Enter it before submitting: token deltas are not replayable; events are."""

    def __init__(self, bus: Bus, tenant: str, run_id: str, tokens: bool = True) -> None:
        self.bus = bus
        self.tenant = tenant
        self.run_id = run_id
        self.want_tokens = tokens
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._subscriptions: list[Any] = []
        self._last_seq = 0

    async def __aenter__(self) -> RunFollower:
        if self.want_tokens:
            self._subscriptions.append(
                await self.bus.nc.subscribe(
                    subjects.runs_tokens(self.tenant, self.run_id), cb=self._on_token
                )
            )
        self._subscriptions.append(
            await self.bus.js.subscribe(
                subjects.runs_events(self.tenant, self.run_id),
                cb=self._on_event,
                ordered_consumer=True,
                deliver_policy=DeliverPolicy.ALL,
            )
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        for subscription in self._subscriptions:
            await subscription.unsubscribe()

    async def _on_token(self, msg: Any) -> None:
        self._queue.put_nowait(_token_decoder.decode(msg.data))

    async def _on_event(self, msg: Any) -> None:
        event = _event_decoder.decode(msg.data)
        if event.seq <= self._last_seq:
            return  # a republished event after a runner's restart: seen already
        self._last_seq = event.seq
        self._queue.put_nowait(event)

    def __aiter__(self) -> AsyncIterator[RunEvent | TokenDelta]:
        return self._items()

    async def _items(self) -> AsyncIterator[RunEvent | TokenDelta]:
        while True:
            item = await self._queue.get()
            yield item
            if not isinstance(item, TokenDelta) and is_terminal(item):
                return


async def cancel_run(
    bus: Bus, run_id: str, reason: str = "", timeout: float = 2.0
) -> ControlAck | None:
    """Ask for a run to stop. The replica holding the run acknowledges; None when no replica
    holds it now (queued, or ended): the cancel is recorded and applies when it is picked up."""
    return await _control(bus, run_id, Cancel(reason=reason), timeout)


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
