"""Recovery without a kill: a run whose log stops mid-call, long runs kept alive by
heartbeats, and session history carried into the next run."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import msgspec
from runner_testkit import new_submit, run_to_end

from revo_contracts.runs import RunQueued, RunStarted, ToolCalled
from revo_core.testing.scripted_model import Reply, call, text


async def _log_left_by_a_dead_runner(dsn: str, submit, calls: list[ToolCalled]) -> None:
    """What Postgres holds when a runner died after recording calls but not their results."""
    now = time.time()
    events = [
        RunQueued(run_id=submit.run_id, tenant=submit.tenant, seq=1, ts=now, agent=submit.agent),
        RunStarted(run_id=submit.run_id, tenant=submit.tenant, seq=2, ts=now, runner_id="dead"),
        *calls,
    ]
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "INSERT INTO agents.runs (run_id, tenant, agent, status, submit, created_at, "
            "started_at, attempts) VALUES ($1, $2, $3, 'running', $4::jsonb, $5, $5, 1)",
            submit.run_id,
            submit.tenant,
            submit.agent,
            msgspec.json.encode(submit).decode(),
            now,
        )
        for event in events:
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


async def test_an_interrupted_side_effect_is_not_repeated_and_a_read_is(
    scripted_runner, scripted_model, scripted_bus, postgres, tmp_path
):
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "a.txt").write_text("alpha\n")
    submit = new_submit(repo=tmp_path / "repo")
    ids = {"run_id": submit.run_id, "tenant": submit.tenant}
    write = ToolCalled(
        **ids,
        seq=3,
        ts=time.time(),
        step=1,
        call_id=f"{submit.run_id}-s1",
        tool="write_file",
        arguments={"path": "out.txt", "content": "x"},
    )
    read = ToolCalled(
        **ids,
        seq=4,
        ts=time.time(),
        step=2,
        call_id=f"{submit.run_id}-s2",
        tool="read_file",
        arguments={"path": "a.txt"},
    )
    await _log_left_by_a_dead_runner(postgres.dsn, submit, [write, read])
    scripted_model.script(
        submit.run_id, *[text("never asked")] * 2, call("final_answer", answer="ok")
    )

    record = await run_to_end(scripted_bus, submit)

    assert [e.seq for e in record.events] == list(range(1, len(record.events) + 1))
    results = {r.call_id: r for r in record.of_type("tool_result")}
    assert not results[write.call_id].ok
    assert "not repeated" in results[write.call_id].error
    assert results[read.call_id].ok and "alpha" in results[read.call_id].output
    assert record.of_type("started")[-1].attempt == 2
    assert record.types[-1] == "finished"
    # The model was asked once, for step 3: steps 1 and 2 came from the log.
    requests = scripted_model.requests_of(submit.run_id)
    assert len(requests) == 1 and requests[0].request_id.startswith(f"{submit.run_id}-s3-")


async def test_heartbeats_keep_a_long_run_from_being_redelivered(
    scripted_runner, scripted_model, scripted_bus
):
    # The test runners' ack_wait is 3 s; this model call alone takes 5 s.
    submit = new_submit(agent="chatty")
    scripted_model.script(submit.run_id, Reply(text="slow but fine", delay_s=5))

    record = await run_to_end(scripted_bus, submit)

    assert record.types == ["queued", "started", "model_call", "assistant_message", "finished"]
    assert len(scripted_model.requests_of(submit.run_id)) == 1


async def test_a_session_carries_its_history_into_the_next_run(
    scripted_runner, scripted_model, scripted_bus
):
    first = new_submit(agent="chatty", task="my name is Ada", session_id="s-history")
    second = new_submit(agent="chatty", task="what is my name?", session_id="s-history")
    scripted_model.script(first.run_id, text("Nice to meet you, Ada."))
    scripted_model.script(second.run_id, text("Ada."))

    await run_to_end(scripted_bus, first)
    await asyncio.sleep(0.01)
    await run_to_end(scripted_bus, second)

    messages = scripted_model.requests_of(second.run_id)[0].messages
    assert [(m.role, m.content) for m in messages[1:]] == [
        ("user", "my name is Ada"),
        ("assistant", "Nice to meet you, Ada."),
        ("user", "what is my name?"),
    ]
