"""Limits, the stuck-loop guard, and every kind of bad input: each ends as a clear event."""

from __future__ import annotations

import asyncio
import time

import msgspec
import pytest
from runner_testkit import new_submit, run_to_end

from revo_contracts import subjects
from revo_contracts.inference import ChatMessage
from revo_contracts.runs import RunGetRequest, RunLimits, RunQueued
from revo_core.errors import InvalidRequest, NotFound
from revo_core.runs import RunFollower, get_run, new_run_id, submit_run
from revo_core.testing.metrics import metric_value
from revo_core.testing.scripted_model import Reply, call, text


async def test_max_steps_ends_the_run_with_the_limit(scripted_runner, scripted_model, scripted_bus):
    submit = new_submit(limits=RunLimits(max_steps=3))
    scripted_model.script(submit.run_id, *(call("search_code", pattern=f"p{i}") for i in range(10)))

    record = await run_to_end(scripted_bus, submit)

    assert record.last.code == "limit_exceeded"
    assert "max_steps" in record.last.reason
    assert len(record.of_type("tool_called")) == 3


async def test_max_tokens_ends_the_run_with_the_limit(
    scripted_runner, scripted_model, scripted_bus
):
    submit = new_submit(limits=RunLimits(max_tokens=100))  # each scripted call uses 60
    scripted_model.script(submit.run_id, *(call("search_code", pattern=f"p{i}") for i in range(10)))

    record = await run_to_end(scripted_bus, submit)

    assert record.last.code == "limit_exceeded"
    assert "max_tokens: 120 tokens used of 100" in record.last.reason
    assert len(record.of_type("model_call")) == 2


async def test_wall_time_ends_a_run_stuck_in_a_model_call(
    scripted_runner, scripted_model, scripted_bus
):
    submit = new_submit(limits=RunLimits(wall_time_s=1.0))
    scripted_model.script(submit.run_id, Reply(text="slow", delay_s=10))

    started = time.monotonic()
    record = await run_to_end(scripted_bus, submit)

    assert record.last.code == "limit_exceeded"
    assert "wall_time" in record.last.reason
    assert time.monotonic() - started < 5


async def test_the_same_call_three_times_is_a_stuck_loop(
    scripted_runner, scripted_model, scripted_bus
):
    submit = new_submit()
    scripted_model.script(submit.run_id, forever=call("list_files", path="."))

    record = await run_to_end(scripted_bus, submit)

    assert record.types[-1] == "failed"
    assert record.last.code == "stuck_loop"
    assert "list_files" in record.last.reason and "3 times" in record.last.reason
    assert len(record.of_type("tool_called")) == 2


async def test_an_invalid_reply_is_shown_to_the_model_once(
    scripted_runner, scripted_model, scripted_bus
):
    submit = new_submit()
    scripted_model.script(
        submit.run_id,
        text("I think I will read a file"),
        retries={0: call("final_answer", answer="fixed it")},
    )

    record = await run_to_end(scripted_bus, submit)

    assert record.types[-1] == "finished"
    assert record.last.answer == "fixed it"
    retry = scripted_model.requests_of(submit.run_id)[-1]
    assert retry.request_id.endswith("-r")
    assert "not a valid tool call" in retry.messages[-1].content
    assert retry.messages[-2].content == "I think I will read a file"


@pytest.mark.parametrize(
    ("reply", "said"),
    [
        (text("not json at all"), "not JSON of the form"),
        (call("delete_everything", path="/"), "unknown tool 'delete_everything'"),
        (call("read_file", path=5), "invalid arguments for read_file"),
    ],
)
async def test_invalid_twice_fails_the_step_with_the_reason(
    scripted_runner, scripted_model, scripted_bus, reply, said
):
    submit = new_submit()
    scripted_model.script(submit.run_id, reply, retries={0: reply})

    record = await run_to_end(scripted_bus, submit)

    assert record.types[-1] == "failed"
    assert record.last.code == "invalid_tool_call"
    assert said in record.last.reason
    assert len(record.of_type("model_call")) == 2


async def test_unknown_agent(scripted_runner, scripted_bus):
    record = await run_to_end(scripted_bus, new_submit(agent="no-such-agent"))

    assert record.types == ["queued", "started", "failed"]
    assert record.last.code == "not_found"
    assert "unknown agent 'no-such-agent'" in record.last.reason
    assert "code-analyst" in record.last.reason


async def test_missing_workspace(scripted_runner, scripted_bus, tmp_path):
    record = await run_to_end(scripted_bus, new_submit(repo=tmp_path / "nowhere"))

    assert record.last.code == "not_found"
    assert "does not exist" in record.last.reason


async def test_a_run_without_task_or_messages(scripted_runner, scripted_bus):
    submit = new_submit(
        agent="chatty", task=None, messages=[ChatMessage(role="system", content="x")]
    )

    record = await run_to_end(scripted_bus, submit)

    assert record.last.code == "invalid_request"
    assert "neither a task nor user messages" in record.last.reason


async def test_an_error_from_inference_fails_the_run_with_its_code(
    scripted_runner, scripted_model, scripted_bus
):
    submit = new_submit(agent="chatty")
    scripted_model.script(submit.run_id, Reply(error="invalid_request"))

    record = await run_to_end(scripted_bus, submit)

    assert record.last.code == "invalid_request"
    assert record.last.reason.startswith("inference:")


async def test_path_traversal_is_a_failed_tool_result_and_the_run_goes_on(
    scripted_runner, scripted_model, scripted_bus, tmp_path
):
    (tmp_path / "repo").mkdir()
    (tmp_path / "secret.txt").write_text("top secret")
    (tmp_path / "repo" / "link.txt").symlink_to(tmp_path / "secret.txt")
    submit = new_submit(repo=tmp_path / "repo")
    scripted_model.script(
        submit.run_id,
        call("read_file", path="../secret.txt"),
        call("read_file", path="link.txt"),
        call("final_answer", answer="could not"),
    )

    record = await run_to_end(scripted_bus, submit)

    results = record.of_type("tool_result")
    assert [r.ok for r in results] == [False, False]
    assert all("outside the workspace" in r.error for r in results)
    assert all("top secret" not in r.output for r in results)
    assert record.types[-1] == "finished"


async def test_a_run_over_the_payload_limit_is_refused_at_submit(scripted_bus):
    huge = new_submit(task="x" * (scripted_bus.nc.max_payload + 10))
    with pytest.raises(InvalidRequest, match="exceeds"):
        await submit_run(scripted_bus, huge)


async def test_malformed_runs_do_not_stop_the_consumer(
    scripted_runner, scripted_model, scripted_bus
):
    rejected = metric_value(scripted_runner, "revo_runs_rejected_total", reason="malformed")
    await scripted_bus.js.publish(subjects.runs_submit("acme"), b"{not json")
    await scripted_bus.js.publish(subjects.runs_submit("acme"), b'{"run_id": "r1", "agent": 5}')
    submit = new_submit(agent="chatty")
    scripted_model.script(submit.run_id, text("still here"))

    record = await run_to_end(scripted_bus, submit)

    assert record.last.answer == "still here"
    assert metric_value(scripted_runner, "revo_runs_rejected_total", reason="malformed") == (
        rejected + 2
    )


async def test_the_answer_limit_caps_the_answering_step_and_says_length(
    scripted_runner, scripted_model, scripted_bus
):
    submit = new_submit(agent="chatty", answer_max_tokens=5)
    scripted_model.script(submit.run_id, text(" ".join(f"w{i}" for i in range(40))))

    record = await run_to_end(scripted_bus, submit)

    (request,) = scripted_model.requests_of(submit.run_id)
    assert request.max_tokens == 5
    assert record.last.answer == "w0 w1 w2 w3 w4"
    assert record.last.finish_reason == "length"


async def test_an_answer_within_the_limit_finishes_with_stop(
    scripted_runner, scripted_model, scripted_bus
):
    submit = new_submit(agent="chatty", answer_max_tokens=50)
    scripted_model.script(submit.run_id, text("short and complete"))

    record = await run_to_end(scripted_bus, submit)

    assert record.last.answer == "short and complete"
    assert record.last.finish_reason == "stop"


async def test_an_answer_given_through_final_answer_is_cut_to_the_limit(
    scripted_runner, scripted_model, scripted_bus, tmp_path
):
    (tmp_path / "repo").mkdir()
    submit = new_submit(repo=tmp_path / "repo", answer_max_tokens=3)
    long_answer = "word " * 200
    scripted_model.script(submit.run_id, call("final_answer", answer=long_answer))

    record = await run_to_end(scripted_bus, submit)

    # The scripted call is 10 tokens for its whole JSON: ~104 characters a token.
    assert record.last.finish_reason == "length"
    assert 0 < len(record.last.answer) < len(long_answer) * 3 / 10 + 20
    assert long_answer.startswith(record.last.answer)


async def test_a_run_past_its_contract_is_refused_at_submit_naming_the_field(scripted_bus):
    submit = new_submit(user="u" * 300)
    with pytest.raises(InvalidRequest, match=r"\$\.user"):
        await submit_run(scripted_bus, submit)


async def _publish_raw_run(bus, tenant: str, run_id: str, body: dict, msg_id: str | None) -> None:
    """A run published as a buggy or foreign submitter would: past submit_run's checks."""
    queued = RunQueued(run_id=run_id, tenant=tenant, seq=1, ts=time.time(), agent="chatty")
    await bus.js_publish(subjects.runs_events(tenant, run_id), queued, msg_id=f"{run_id}:1")
    headers = {"Nats-Msg-Id": msg_id} if msg_id else None
    await bus.js.publish(subjects.runs_submit(tenant), msgspec.json.encode(body), headers=headers)


@pytest.mark.parametrize(
    ("body", "msg_id"),
    [
        ({"task": "hi", "user": "u" * 300}, None),  # the probe's oversized user
        ({"task": "hi", "agent": 5}, None),  # a field of the wrong type
        ({"task": "hi", "user": "u" * 300, "run_id": None}, "header"),  # id from Nats-Msg-Id
    ],
)
async def test_an_unreadable_run_that_can_be_identified_fails_at_once_for_its_submitter(
    scripted_runner, scripted_bus, body, msg_id
):
    tenant, run_id = "acme", new_run_id()
    body = {"run_id": run_id, "tenant": tenant, "agent": "chatty", **body}
    async with RunFollower(scripted_bus, tenant, run_id, replay=False) as follower:
        await _publish_raw_run(scripted_bus, tenant, run_id, body, msg_id and run_id)
        async with asyncio.timeout(10):
            events = [item async for item in follower]

    assert events[-1].code == "invalid_request"
    assert "could not be read" in events[-1].reason
    detail = await get_run(scripted_bus, RunGetRequest(run_id=run_id, tenant=tenant))
    assert (detail.run.status, detail.run.error_code) == ("failed", "invalid_request")


async def test_an_unreadable_run_naming_another_tenant_than_its_subject_is_not_recorded(
    scripted_runner, scripted_model, scripted_bus
):
    run_id = new_run_id()
    body = {"run_id": run_id, "tenant": "beta", "agent": "chatty", "user": "u" * 300}
    await _publish_raw_run(scripted_bus, "acme", run_id, body, None)
    submit = new_submit(agent="chatty")  # a run after it: the forged one has been handled
    scripted_model.script(submit.run_id, text("next"))
    await run_to_end(scripted_bus, submit)

    for tenant in ("acme", "beta"):
        with pytest.raises(NotFound):
            await get_run(scripted_bus, RunGetRequest(run_id=run_id, tenant=tenant))


async def test_a_valid_run_naming_another_tenant_than_its_subject_is_dropped_unrun(
    scripted_runner, scripted_model, scripted_bus
):
    # Whoever may publish runs.submit.acme must not get a run executed (and billed) as beta.
    forged = new_submit(agent="chatty", tenant="beta")
    scripted_model.script(forged.run_id, text("should never be asked"))
    body = msgspec.to_builtins(forged)
    await _publish_raw_run(scripted_bus, "acme", forged.run_id, body, forged.run_id)
    submit = new_submit(agent="chatty")  # a run after it: the forged one has been handled
    scripted_model.script(submit.run_id, text("next"))
    await run_to_end(scripted_bus, submit)

    for tenant in ("acme", "beta"):
        with pytest.raises(NotFound):
            await get_run(scripted_bus, RunGetRequest(run_id=forged.run_id, tenant=tenant))


async def test_a_catastrophic_search_pattern_answers_quickly_and_the_run_goes_on(
    scripted_runner, scripted_model, scripted_bus, tmp_path
):
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "long.txt").write_text("a" * 28 + "b\n" + "a" * 200_000 + "b\n")
    submit = new_submit(repo=tmp_path / "repo")
    scripted_model.script(
        submit.run_id,
        call("search_code", pattern="(a+)+$"),
        call("search_code", pattern=r"(a)\1"),
        call("final_answer", answer="searched"),
    )

    record = await run_to_end(scripted_bus, submit, timeout=15)

    first, second = record.of_type("tool_result")
    assert (first.ok, first.output) == (True, "no matches for /(a+)+$/")
    assert not second.ok and "no backreferences" in second.error
    assert record.last.answer == "searched"
    assert len(record.of_type("started")) == 1
