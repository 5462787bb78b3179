"""The agent loop against a scripted model: tool calls, answers, chat, events and tokens."""

from __future__ import annotations

import json

from runner_testkit import new_submit, run_to_end

from revo_core.testing.scripted_model import call, text


async def test_tool_call_then_final_answer(scripted_runner, scripted_model, scripted_bus, tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "notes.txt").write_text("the answer is 42\n")
    submit = new_submit(task="what is the answer?", repo=repo)
    scripted_model.script(
        submit.run_id,
        call("read_file", path="notes.txt"),
        call("final_answer", answer="It is 42."),
    )

    record = await run_to_end(scripted_bus, submit)

    assert record.types == [
        "queued",
        "started",
        "model_call",
        "tool_called",
        "tool_result",
        "model_call",
        "assistant_message",
        "finished",
    ]
    assert [e.seq for e in record.events] == list(range(1, 9))
    result = record.of_type("tool_result")[0]
    assert result.ok and "the answer is 42" in result.output
    assert record.last.answer == "It is 42."
    assert record.last.usage.total_tokens == 120
    # The model saw the tool's result in its second request.
    second = scripted_model.requests_of(submit.run_id)[1]
    assert any(m.role == "tool" and "the answer is 42" in m.content for m in second.messages)
    # Token deltas of the tool calls went out on core NATS while the model wrote them.
    assert {t.kind for t in record.tokens} == {"tool_call"}
    assert json.loads(record.tokens[0].delta)["name"] == "read_file"


async def test_chat_agent_answers_in_text_and_streams_tokens(
    scripted_runner, scripted_model, scripted_bus
):
    submit = new_submit(agent="chatty", task="hello")
    scripted_model.script(submit.run_id, text("Hello there, how can I help?"))

    record = await run_to_end(scripted_bus, submit)

    assert record.types == ["queued", "started", "model_call", "assistant_message", "finished"]
    assert record.last.answer == "Hello there, how can I help?"
    assert "".join(t.delta for t in record.tokens) == "Hello there, how can I help?"
    assert {t.kind for t in record.tokens} == {"text"}
    request = scripted_model.requests_of(submit.run_id)[0]
    assert request.tools == [] and request.tenant == "acme"
    assert request.messages[0].role == "system"


async def test_after_answer_after_steps_only_final_answer_is_offered(
    scripted_runner, scripted_model, scripted_bus
):
    submit = new_submit(agent="hasty")
    scripted_model.script(
        submit.run_id,
        call("list_files"),
        call("list_files", path="src"),
        retries={1: call("final_answer", answer="done looking")},
    )

    record = await run_to_end(scripted_bus, submit)

    assert record.types[-1] == "finished", record.last
    assert record.last.answer == "done looking"
    first, second, retry = scripted_model.requests_of(submit.run_id)
    assert [t.function.name for t in first.tools] == ["list_files", "final_answer"]
    assert [t.function.name for t in second.tools] == ["final_answer"]
    assert "unknown tool 'list_files'; the tools are final_answer" in retry.messages[-1].content
