"""What the model is shown: cut to its context, and cut deeper when inference says so."""

from __future__ import annotations

from runner_testkit import new_submit, run_to_end

from revo_agent_runner.prompting import budget_for, fit, shrunk_budget
from revo_contracts.inference import ChatMessage
from revo_core.testing.scripted_model import Reply


def test_fit_shortens_the_longest_tool_result_and_keeps_the_ends():
    messages = [
        ChatMessage(role="system", content="s" * 100),
        ChatMessage(role="tool", content="t" * 5000, tool_call_id="c1"),
        ChatMessage(role="tool", content="u" * 800, tool_call_id="c2"),
        ChatMessage(role="user", content="q" * 300),
    ]

    fitted = fit(messages, 2000)

    assert sum(len(m.content) for m in fitted) <= 2000
    assert fitted[0].content == messages[0].content
    assert fitted[-1].content == messages[-1].content
    assert "shortened to fit" in fitted[1].content
    assert fitted[1].tool_call_id == "c1"


def test_the_budget_leaves_room_for_the_answer():
    assert budget_for(2048, 256) < budget_for(2048, 64) < budget_for(8192, 256)
    assert budget_for(2048, 256) < (2048 - 256) * 3


def test_a_context_error_shrinks_the_budget_by_how_far_off_it_was():
    details = {"max_context": 2048, "prompt_tokens": 4000}
    assert shrunk_budget(10_000, details, 256) < 10_000 * (2048 - 256) / 4000
    assert shrunk_budget(10_000, {"field": "temperature"}, 256) is None
    assert shrunk_budget(10_000, details, 4096) is None


async def test_a_prompt_over_the_context_is_cut_and_sent_again(
    scripted_runner, scripted_model, scripted_bus, tmp_path
):
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "big.txt").write_text(
        "".join(f"line {i:04d} " * 5 + "\n" for i in range(150))
    )
    submit = new_submit(repo=tmp_path / "repo")
    too_long = {"field": "max_tokens", "max_context": 2048, "prompt_tokens": 3000}
    scripted_model.script(
        submit.run_id,
        Reply(call=("read_file", {"path": "big.txt"})),
        Reply(
            call=("final_answer", {"answer": "read it"}),
            error="invalid_request",
            error_details=too_long,
            error_times=1,
        ),
    )

    record = await run_to_end(scripted_bus, submit)

    assert record.last.answer == "read it"
    _, refused, accepted = scripted_model.requests_of(submit.run_id)
    size = [sum(len(m.content) for m in r.messages) for r in (refused, accepted)]
    assert size[1] < size[0] * 0.7, size
    assert "shortened to fit" in accepted.messages[-1].content


async def test_a_prompt_that_never_fits_fails_the_run_once_with_the_reason(
    scripted_runner, scripted_model, scripted_bus
):
    submit = new_submit(agent="chatty", task="x " * 20_000)
    too_long = {"field": "max_tokens", "max_context": 2048, "prompt_tokens": 40_093}
    scripted_model.script(
        submit.run_id, Reply(text="never", error="invalid_request", error_details=too_long)
    )

    record = await run_to_end(scripted_bus, submit, timeout=15)

    assert record.types[-1] == "failed"
    assert record.last.code == "context_length_exceeded"
    assert "2048-token context" in record.last.reason
    assert len(record.of_type("started")) == 1  # failed once, never handed back and retried
