"""runs.control: cancel within a second, answers to the agent's questions; the runs API."""

from __future__ import annotations

import asyncio
import time

import pytest
from runner_testkit import RunRecord, follow, new_submit, run_to_end, wait_for_event

from revo_contracts.runs import RunGetRequest, RunListRequest
from revo_core.errors import NotFound
from revo_core.runs import answer_run, cancel_run, get_run, list_runs, submit_run
from revo_core.testing.scripted_model import Reply, call


async def test_cancel_stops_a_run_within_a_second(scripted_runner, scripted_model, scripted_bus):
    submit = new_submit()
    gate = asyncio.Event()
    scripted_model.script(submit.run_id, call("list_files"), Reply(text="never", gate=gate))
    record = RunRecord()
    following = asyncio.create_task(follow(scripted_bus, submit, record))
    await submit_run(scripted_bus, submit)
    await _wait_for_requests(scripted_model, submit.run_id, 2)

    asked = time.monotonic()
    ack = await cancel_run(scripted_bus, submit.run_id, reason="changed my mind")
    await asyncio.wait_for(following, 5)
    took = time.monotonic() - asked
    gate.set()

    assert ack is not None and ack.accepted and ack.status == "cancelling"
    assert record.types[-1] == "cancelled"
    assert record.last.reason == "changed my mind"
    assert took < 1.0
    detail = await get_run(scripted_bus, RunGetRequest(run_id=submit.run_id))
    assert detail.run.status == "cancelled"


async def test_a_cancel_sent_before_the_run_is_taken_still_applies(scripted_runner, scripted_bus):
    submit = new_submit(agent="chatty")
    assert await cancel_run(scripted_bus, submit.run_id, reason="too late", timeout=0.5) is None
    await asyncio.sleep(0.3)  # the cancel is recorded by one replica, asynchronously

    record = await run_to_end(scripted_bus, submit)

    assert record.types[-1] == "cancelled"
    assert record.last.reason == "too late"


async def test_the_agent_asks_and_the_answer_comes_back_as_the_tool_result(
    scripted_runner, scripted_model, scripted_bus
):
    submit = new_submit()
    scripted_model.script(
        submit.run_id,
        call("ask_user", question="Which branch?"),
        call("final_answer", answer="ok, main"),
    )
    record = RunRecord()
    following = asyncio.create_task(follow(scripted_bus, submit, record))
    await submit_run(scripted_bus, submit)
    waiting = await wait_for_event(record, "waiting_for_input")

    ack = await answer_run(scripted_bus, submit.run_id, "main, please")
    await asyncio.wait_for(following, 10)

    assert waiting.question == "Which branch?"
    assert ack is not None and ack.accepted
    result = record.of_type("tool_result")[0]
    assert result.ok and result.output == "main, please"
    assert record.types[-1] == "finished"


async def test_runs_are_listed_and_shown_per_tenant(scripted_runner, scripted_model, scripted_bus):
    submit = new_submit(agent="chatty", tenant="globex", task="list me")
    scripted_model.script(submit.run_id, Reply(text="listed"))
    await run_to_end(scripted_bus, submit)

    listed = await list_runs(scripted_bus, RunListRequest(tenant="globex"))
    others = await list_runs(scripted_bus, RunListRequest(tenant="acme", limit=500))
    detail = await get_run(scripted_bus, RunGetRequest(run_id=submit.run_id, tenant="globex"))

    assert listed.runs[0].run_id == submit.run_id
    assert listed.runs[0].status == "finished" and listed.runs[0].answer == "listed"
    assert all(run.tenant == "globex" for run in listed.runs)
    assert submit.run_id not in {run.run_id for run in others.runs}
    assert [e.seq for e in detail.events] == [1, 2, 3, 4, 5]
    with pytest.raises(NotFound):
        await get_run(scripted_bus, RunGetRequest(run_id=submit.run_id, tenant="acme"))


async def _wait_for_requests(model, run_id: str, count: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while len(model.requests_of(run_id)) < count:
        assert time.monotonic() < deadline, f"the model got {len(model.requests_of(run_id))} calls"
        await asyncio.sleep(0.02)
