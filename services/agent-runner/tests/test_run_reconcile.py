"""A run's Postgres row converges to its event log.

What the chaos bench found (docs/chaos.md, defect 4): with NATS away, JetStream gave a
running run out again to the same replica, a second attempt ran beside the first and
finished, and the first, still going, wrote `running` over the row; Postgres then went
away, the first attempt stopped, and the row said `running` for good while RUN_EVENTS said
`finished`. Own nats-server, own Postgres (stopped and started again here) and own runners.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import asyncpg
import msgspec
import pytest
from nats.js.errors import NotFoundError
from runner_testkit import RunRecord, follow, new_submit

from revo_agent_runner.app import SCHEMA_SQL
from revo_contracts import subjects
from revo_contracts.inference import Usage
from revo_contracts.runs import (
    AssistantMessage,
    ModelCalled,
    RunCancelled,
    RunDetail,
    RunEvent,
    RunFailed,
    RunFinished,
    RunGetRequest,
    RunQueued,
    RunStarted,
    RunSubmit,
    ToolResult,
)
from revo_contracts.streams import RUN_EVENTS, RUNS
from revo_core.bus import Bus
from revo_core.embedded.ports import free_port
from revo_core.embedded.postgres import Postgres
from revo_core.jetstream import ensure_streams
from revo_core.runs import event_type, get_run, submit_run
from revo_core.testing.fixtures import RunnerFactory, nats_server_of, operator_bus
from revo_core.testing.scripted_model import Reply, ScriptedModel, call, text

TERMINAL = ("finished", "failed", "cancelled")


@pytest.fixture(scope="module")
def reconcile_postgres(revo_tmp):
    server = Postgres(revo_tmp / "pg-reconcile", free_port()).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def reconcile_nats(revo_tmp, bus_authority):
    server = nats_server_of(revo_tmp / "nats-reconcile", bus_authority)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def reconcile_runners(revo_tmp, reconcile_postgres, otlp_receiver):
    factory = RunnerFactory(
        revo_tmp / "agent-runner-reconcile", reconcile_postgres.dsn, otlp_receiver.endpoint
    )
    yield factory
    factory.stop_all()


@pytest.fixture(scope="module")
async def reconcile_world(reconcile_nats):
    bus = await operator_bus(reconcile_nats, "pytest-reconcile")
    model = await ScriptedModel(bus).start()
    yield bus, model
    await model.stop()
    await bus.close()


async def test_a_run_given_out_again_while_it_runs_ends_once_and_its_row_says_how(
    reconcile_world, reconcile_runners, reconcile_nats, reconcile_postgres, tmp_path
):
    bus, model = reconcile_world
    # No heartbeat within ack_wait (3 s): JetStream gives the run out again while it runs,
    # as it does when NATS is away for longer than ack_wait.
    runner = reconcile_runners.start(
        reconcile_nats.url,
        "runner-slow-heartbeats",
        REVO_AGENT_RUNNER_HEARTBEAT_S="60",
        REVO_AGENT_RUNNER_RECONCILE_INTERVAL_S="1",
    )
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "a.txt").write_text("alpha\n")
    submit = new_submit(repo=tmp_path / "repo", task="what does a.txt say?")
    first_step, last_step = asyncio.Event(), asyncio.Event()
    model.script(submit.run_id, Reply(call=("read_file", {"path": "a.txt"}), gate=first_step))
    delivered_before = await _deliveries(bus)
    record = RunRecord()
    following = asyncio.create_task(follow(bus, submit, record))
    await submit_run(bus, submit)
    await _wait_until(lambda: len(model.requests_of(submit.run_id)) == 1)
    # A second attempt asking for the first step now would be answered at once.
    model.script(
        submit.run_id,
        call("final_answer", answer="the answer of a second attempt"),
        Reply(call=("final_answer", {"answer": "a.txt says alpha"}), gate=last_step),
    )
    await _wait_until_async(lambda: _delivered_again(bus, delivered_before), timeout=20)
    await asyncio.sleep(1.5)  # time for a second attempt to run, were one started

    first_step.set()
    await _wait_until(lambda: any(_step_of(r) == 1 for r in model.requests_of(submit.run_id)))
    # Postgres goes away while the model writes the answer: the answer cannot be written.
    await asyncio.to_thread(reconcile_postgres.stop)
    last_step.set()
    await asyncio.sleep(2)
    await asyncio.to_thread(reconcile_postgres.start)

    detail = await _ended(bus, submit.run_id, timeout=60)
    await asyncio.wait_for(following, 30)
    runner.stop(timeout=10)

    assert "run given out again while it runs here" in runner.log_file.read_text()

    ends = [e for e in record.events if event_type(e) in TERMINAL]
    assert [event_type(e) for e in ends] == ["finished"], record.types
    assert detail.run.status == "finished"
    assert detail.run.answer == ends[0].answer == "a.txt says alpha"
    # No second attempt ran beside the first: the first step was asked for once.
    assert [_step_of(r) for r in model.requests_of(submit.run_id)].count(0) == 1
    starts = record.of_type("started")
    assert [s.attempt for s in starts] == list(range(1, len(starts) + 1))
    # Postgres holds the log the stream holds.
    assert [(e.seq, event_type(e)) for e in detail.events] == [
        (e.seq, event_type(e)) for e in record.events
    ]
    assert detail.run.steps == 2 and detail.run.total_tokens == 120


async def test_an_attempt_that_lost_its_run_to_another_replica_adds_nothing_after_its_end(
    reconcile_world, reconcile_runners, reconcile_nats
):
    bus, model = reconcile_world
    # A's heartbeats never come (as with NATS away): its lease runs out, and the run, given
    # out again, is claimed by B while A's attempt is still waiting on the model.
    runner_a = reconcile_runners.start(
        reconcile_nats.url, "runner-cut-off", REVO_AGENT_RUNNER_HEARTBEAT_S="60"
    )
    submit = new_submit(agent="chatty", task="who answers?")
    first_answer = asyncio.Event()
    model.script(submit.run_id, Reply(text="the answer of attempt 1", gate=first_answer))
    record = RunRecord()
    following = asyncio.create_task(follow(bus, submit, record))
    await submit_run(bus, submit)
    await _wait_until(lambda: len(model.requests_of(submit.run_id)) == 1)
    model.script(submit.run_id, text("the answer of attempt 2"))
    runner_b = reconcile_runners.start(reconcile_nats.url, "runner-takes-over")
    await asyncio.wait_for(following, 30)
    ended_by_b = await _ended(bus, submit.run_id)

    first_answer.set()  # attempt 1 goes on, with a run that has ended
    await _wait_until(lambda: "run ended by another attempt" in runner_a.log_file.read_text())
    detail = await get_run(bus, RunGetRequest(run_id=submit.run_id))
    stream = await _stream_log(bus, submit)
    runner_a.stop(timeout=10)
    runner_b.stop(timeout=10)

    assert [(s.runner_id, s.attempt) for s in record.of_type("started")] == [
        ("runner-cut-off", 1),
        ("runner-takes-over", 2),
    ]
    assert record.types[-1] == "finished" and record.last.answer == "the answer of attempt 2"
    assert detail.run == ended_by_b.run
    assert detail.run.status == "finished" and detail.run.answer == "the answer of attempt 2"
    assert [event_type(e) for e in stream] == record.types
    assert [(e.seq, event_type(e)) for e in detail.events] == [
        (e.seq, event_type(e)) for e in stream
    ]


async def test_stale_running_rows_take_the_end_their_event_log_holds(
    reconcile_world, reconcile_runners, reconcile_nats, reconcile_postgres
):
    bus, _ = reconcile_world
    dsn = reconcile_postgres.dsn
    await ensure_streams(bus.js, (RUN_EVENTS,))
    conn = await asyncpg.connect(dsn)
    try:  # the runner's schema, as a runner that was here before made it
        await conn.execute(SCHEMA_SQL.read_text())
    finally:
        await conn.close()
    # Left by runners that are gone, before any runner of this test is up: the runner's
    # pass at start takes them (its next one is an hour away).
    finished = await _left_running(dsn, bus, lambda ids: _answered(ids, "forty-two"))
    failed = await _left_running(
        dsn, bus, lambda ids: [RunFailed(**ids, seq=3, code="upstream_error", reason="gone")]
    )
    at_start = reconcile_runners.start(
        reconcile_nats.url,
        "runner-reconciles-at-start",
        REVO_AGENT_RUNNER_RECONCILE_INTERVAL_S="3600",
    )
    got_finished = await _ended(bus, finished.run_id)
    got_failed = await _ended(bus, failed.run_id)
    # Handed back (no owner) with its end in Postgres's log but not in its row, and given
    # out again: the replica that claims it writes the row from the log.
    redelivered = await _left_running(
        dsn, bus, lambda ids: _answered(ids, "from the log"), in_postgres=True, owner=None
    )
    await submit_run(bus, redelivered)
    got_redelivered = await _ended(bus, redelivered.run_id)
    at_start.stop(timeout=10)

    assert got_finished.run.status == "finished" and got_finished.run.answer == "forty-two"
    assert got_finished.run.steps == 1 and got_finished.run.total_tokens == 60
    assert got_finished.run.ended_at == got_finished.events[-1].ts
    assert [event_type(e) for e in got_finished.events] == [
        "queued", "started", "model_call", "assistant_message", "finished"
    ]  # fmt: skip
    assert got_failed.run.status == "failed"
    assert (got_failed.run.error_code, got_failed.run.error_reason) == ("upstream_error", "gone")
    assert event_type(got_failed.events[-1]) == "failed"
    assert got_redelivered.run.status == "finished"
    assert got_redelivered.run.answer == "from the log"
    assert got_redelivered.run.attempts == 2  # claimed (the pass at start was over)
    assert [event_type(e) for e in got_redelivered.events].count("started") == 1

    # Left while a runner is up: its periodic pass takes them.
    periodic = reconcile_runners.start(
        reconcile_nats.url, "runner-reconciles-often", REVO_AGENT_RUNNER_RECONCILE_INTERVAL_S="1"
    )
    # Its end reached Postgres's event log but not the row: an older runner's stale attempt
    # wrote over the row, and a result of its own after the end.
    cancelled = await _left_running(
        dsn,
        bus,
        lambda ids: [
            RunCancelled(**ids, seq=3, reason="stop"),
            ToolResult(**ids, seq=4, step=1, call_id="late", ok=True, output="after the end"),
        ],
        in_postgres=True,
    )
    # No end in its log: left for its redelivery to resume it.
    unended = await _left_running(dsn, bus, lambda ids: [_model_called(ids, seq=3)])
    # An end in its log, but its owner's lease holds: that owner is still writing it.
    held = await _left_running(
        dsn, bus, lambda ids: _answered(ids, "not yet"), lease_s=600, owner="runner-alive"
    )
    got_cancelled = await _ended(bus, cancelled.run_id)
    await asyncio.sleep(3)  # three more passes
    got_unended = await get_run(bus, RunGetRequest(run_id=unended.run_id))
    got_held = await get_run(bus, RunGetRequest(run_id=held.run_id))
    periodic.stop(timeout=10)

    assert got_cancelled.run.status == "cancelled" and got_cancelled.run.error_reason == "stop"
    assert got_unended.run.status == "running" and got_unended.run.steps == 0
    assert await _owner(dsn, unended.run_id) == "runner-gone"
    assert got_held.run.status == "running"
    assert await _owner(dsn, held.run_id) == "runner-alive"


# -- helpers ---------------------------------------------------------------------------------


async def _stream_log(bus: Bus, submit: RunSubmit) -> list[RunEvent]:
    """Every event RUN_EVENTS holds for the run, in the stream's order."""
    subject = subjects.runs_events(submit.tenant, submit.run_id)
    events, stream_seq = [], 1
    while True:
        try:
            stored = await bus.js.get_msg(
                RUN_EVENTS.name, seq=stream_seq, subject=subject, next=True
            )
        except NotFoundError:
            return events
        stream_seq = stored.seq + 1
        events.append(msgspec.json.decode(stored.data, type=RunEvent))


def _step_of(request) -> int:
    return sum(1 for m in request.messages if m.role == "tool")


async def _deliveries(bus: Bus) -> int:
    """Deliveries of the runners' consumer so far, first ones and redeliveries."""
    info = await bus.js.consumer_info(RUNS.name, "agent-runner")
    return info.delivered.consumer_seq if info.delivered else 0


async def _delivered_again(bus: Bus, before: int) -> bool:
    """The one run submitted since `before` was delivered, and then delivered again."""
    return await _deliveries(bus) >= before + 2


async def _ended(bus: Bus, run_id: str, timeout: float = 30.0) -> RunDetail:
    """The run as `runs.api.get` shows it once its row says it has ended."""
    deadline = time.monotonic() + timeout
    detail = None
    while time.monotonic() < deadline:
        try:
            detail = await get_run(bus, RunGetRequest(run_id=run_id))
        except Exception:  # Postgres or the runner still coming back
            detail = None
        if detail is not None and detail.run.status in TERMINAL:
            return detail
        await asyncio.sleep(0.2)
    shown = detail.run if detail is not None else None
    raise AssertionError(f"run {run_id} did not end within {timeout} s: {shown}")


async def _wait_until(predicate: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def _wait_until_async(predicate, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.1)


def _model_called(ids: dict, seq: int) -> ModelCalled:
    usage = Usage(prompt_tokens=50, completion_tokens=10, total_tokens=60)
    return ModelCalled(
        **ids, seq=seq, step=1, model="scripted", request_id=f"{ids['run_id']}-s1", usage=usage
    )


def _answered(ids: dict, answer: str) -> list[RunEvent]:
    return [
        _model_called(ids, seq=3),
        AssistantMessage(**ids, seq=4, agent="chatty", content=answer),
        RunFinished(**ids, seq=5, answer=answer),
    ]


async def _left_running(
    dsn: str,
    bus: Bus,
    tail: Callable[[dict], list[RunEvent]],
    in_postgres: bool = False,
    lease_s: float = -60,
    owner: str | None = "runner-gone",
) -> RunSubmit:
    """A row `running` whose owner's lease ended `lease_s` ago (or holds for as long),
    with `queued, started` in Postgres and the whole log, `tail` too, in RUN_EVENTS."""
    submit = new_submit(agent="chatty", submitted_at=time.time())
    now = time.time()
    ids = {"run_id": submit.run_id, "tenant": submit.tenant, "ts": now}
    rest = tail(ids)
    head = [
        RunQueued(**ids, seq=1, agent=submit.agent),
        RunStarted(**ids, seq=2, runner_id=owner or "runner-gone"),
    ]
    for event in head + rest:
        await bus.js_publish(
            subjects.runs_events(submit.tenant, submit.run_id),
            event,
            msg_id=f"{submit.run_id}:{event.seq}",
        )
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "INSERT INTO agents.runs (run_id, tenant, agent, status, submit, created_at, "
            "started_at, attempts, owner, lease_until) VALUES ($1, $2, $3, 'running', "
            "$4::jsonb, $5, $5, 1, $6, now() + make_interval(secs => $7))",
            submit.run_id,
            submit.tenant,
            submit.agent,
            msgspec.json.encode(submit).decode(),
            now,
            owner,
            lease_s,
        )
        for event in head + (rest if in_postgres else []):
            await conn.execute(
                "INSERT INTO agents.events (run_id, seq, type, ts, body) "
                "VALUES ($1, $2, $3, $4, $5::jsonb)",
                event.run_id,
                event.seq,
                type(event).__struct_config__.tag,
                event.ts,
                msgspec.json.encode(event).decode(),
            )
    finally:
        await conn.close()
    return submit


async def _owner(dsn: str, run_id: str) -> str | None:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval("SELECT owner FROM agents.runs WHERE run_id = $1", run_id)
    finally:
        await conn.close()
