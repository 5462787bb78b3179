"""A runner SIGKILLed mid-run: another replica resumes the run from its event log.

Own nats-server and two replicas, so which replica holds the run is known and the other
one is the only place it can go.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest
from runner_testkit import RunRecord, follow, new_submit

from revo_contracts.runs import RunGetRequest
from revo_core.runs import event_type, get_run, submit_run
from revo_core.testing.fixtures import nats_server_of, operator_bus
from revo_core.testing.scripted_model import Reply, ScriptedModel, call


@pytest.fixture(scope="module")
def resume_nats(revo_tmp, bus_authority):
    server = nats_server_of(revo_tmp / "nats-resume", bus_authority)
    yield server
    server.stop()


@pytest.fixture(scope="module")
async def resume_world(resume_nats, runner_factory):
    bus = await operator_bus(resume_nats, "pytest-resume")
    model = await ScriptedModel(bus).start()
    runners = {
        name: runner_factory.start(resume_nats.url, name) for name in ("runner-a", "runner-b")
    }
    yield bus, model, runners
    for runner in runners.values():
        runner.stop(timeout=10)
    await model.stop()
    await bus.close()


async def test_a_killed_runner_loses_nothing_and_repeats_no_side_effect(resume_world):
    bus, model, runners = resume_world
    submit = new_submit(task="append a line, then check it")
    gate = asyncio.Event()
    model.script(
        submit.run_id,
        call("write_file", path="log.txt", content="one line\n", append=True),
        Reply(call=("read_file", {"path": "log.txt"}), gate=gate),
        call("final_answer", answer="the log has one line"),
    )
    record = RunRecord()
    following = asyncio.create_task(follow(bus, submit, record))
    await submit_run(bus, submit)
    await _wait_until(lambda: len(model.requests_of(submit.run_id)) >= 2)

    # Events trail the run a little (they are written in the background): wait for it.
    await _wait_until(lambda: bool(record.of_type("started")))
    holder = record.of_type("started")[0].runner_id
    runners[holder].kill()
    gate.set()
    killed_at = time.monotonic()
    await asyncio.wait_for(following, 60)
    resumed_after = time.monotonic() - killed_at

    detail = await get_run(bus, RunGetRequest(run_id=submit.run_id))
    stored = detail.events
    assert [e.seq for e in stored] == list(range(1, len(stored) + 1))
    assert [e.seq for e in record.events] == [e.seq for e in stored]
    types = Counter(event_type(e) for e in stored)
    assert types["finished"] == 1 and types["failed"] == 0
    writes = [e for e in stored if event_type(e) == "tool_called" and e.tool == "write_file"]
    assert len(writes) == 1
    starts = [e for e in stored if event_type(e) == "started"]
    assert [s.attempt for s in starts] == [1, 2]
    assert starts[0].runner_id == holder and starts[1].runner_id != holder
    read = [e for e in stored if event_type(e) == "tool_result"][-1]
    assert read.output.count("one line") == 1, read.output
    assert detail.run.status == "finished" and detail.run.attempts == 2
    assert resumed_after < 30


async def _wait_until(predicate, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_a_stopped_runner_hands_its_run_back_at_once(
    resume_world, runner_factory, resume_nats
):
    bus, model, runners = resume_world
    survivors = {name: p for name, p in runners.items() if p.process.poll() is None}
    runners["runner-c"] = runner_factory.start(resume_nats.url, "runner-c")
    submit = new_submit(agent="chatty", task="take your time")
    gate = asyncio.Event()
    model.script(submit.run_id, Reply(text="done after all", gate=gate))
    record = RunRecord()
    following = asyncio.create_task(follow(bus, submit, record))
    await submit_run(bus, submit)
    await _wait_until(lambda: len(model.requests_of(submit.run_id)) >= 1)

    # Events trail the run a little (they are written in the background): wait for it.
    await _wait_until(lambda: bool(record.of_type("started")))
    holder = record.of_type("started")[0].runner_id
    stopped_at = time.monotonic()
    # SIGTERM: the runner waits its drain grace (5 s in tests), then hands the run back.
    await asyncio.to_thread(runners[holder].stop, 30)
    await _wait_until(lambda: len(record.of_type("started")) >= 2, timeout=20)
    resumed_after = time.monotonic() - stopped_at
    gate.set()
    await asyncio.wait_for(following, 30)

    starts = record.of_type("started")
    assert [s.attempt for s in starts] == [1, 2]
    assert starts[1].runner_id != holder
    assert record.types[-1] == "finished" and record.last.answer == "done after all"
    # Handed back (released and nak'd), not left for ack_wait + the lease to run out.
    assert resumed_after < 5 + 3, resumed_after
    assert len(survivors) >= 1
