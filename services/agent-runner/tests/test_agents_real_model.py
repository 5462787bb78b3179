"""The assistant and the code-analyst end to end on the real vLLM engine with the small model,
and one trace from the submit through the run to inference."""

from __future__ import annotations

import subprocess

import pytest
from opentelemetry import trace
from runner_testkit import new_submit, run_to_end

EMBEDDED_CHAT_MODEL = "smollm2-135m-instruct"


@pytest.fixture(scope="module")
def real_runner(nats_server, inference_service, runner_factory):
    return runner_factory.start(nats_server.url, "runner-real")


@pytest.fixture
def small_repo(tmp_path):
    repo = tmp_path / "shop"
    (repo / "shop").mkdir(parents=True)
    (repo / "shop" / "__init__.py").write_text("")
    (repo / "shop" / "cart.py").write_text(
        "import os\n\n\ndef total(items):\n    return sum(item.price for item in itemz)\n"
    )
    (repo / "web").mkdir()
    (repo / "web" / "app.js").write_text("console.log('hi');\n")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q", str(repo)], check=True)
    subprocess.run([*git, "-C", str(repo), "add", "."], check=True)
    subprocess.run([*git, "-C", str(repo), "commit", "-qm", "shop"], check=True)
    return repo


async def test_assistant_chats_with_the_real_model(real_runner, bus):
    submit = new_submit(agent="assistant", task="Say hello to the team in one sentence.")

    record = await run_to_end(bus, submit, timeout=120)

    # Its recall before answering comes first (skipped here: no memory service runs).
    assert record.types == [
        "queued",
        "started",
        "tool_called",
        "tool_result",
        "model_call",
        "assistant_message",
        "finished",
    ]
    assert record.of_type("tool_called")[0].tool == "recall"
    assert record.of_type("model_call")[0].model == EMBEDDED_CHAT_MODEL
    assert record.last.answer.strip()
    assert "".join(t.delta for t in record.tokens) == record.last.answer
    assert record.last.usage.completion_tokens > 0


async def test_code_analyst_reports_lint_findings_in_one_trace(
    real_runner, bus, small_repo, otlp_receiver
):
    submit = new_submit(agent="code-analyst", task="Review this repository.", repo=small_repo)
    with trace.get_tracer("test").start_as_current_span("submitter") as span:
        trace_id = format(span.get_span_context().trace_id, "032x")
        record = await run_to_end(bus, submit, timeout=240)

    assert record.types[-1] == "finished", record.last
    tools = [e.tool for e in record.of_type("tool_called")]
    assert tools[:2] == ["detect_languages", "run_linter"]
    data = record.last.data
    assert {lang["name"] for lang in data["languages"]} >= {"Python", "JavaScript"}
    found = {(f["file"], f["line"], f["code"], f["severity"]) for f in data["findings"]}
    assert ("shop/cart.py", 1, "F401", "error") in found
    assert ("shop/cart.py", 5, "F821", "error") in found
    assert all(f["suggested_fix"] for f in data["findings"])
    assert "shop/cart.py:1 [error] F401" in record.last.answer
    assert record.of_type("model_call"), "the model wrote the summary"
    # One trace: the submitter's span, the run, its tool calls, its model calls into inference.
    run_span = otlp_receiver.wait_for(trace_id, "run code-analyst")
    assert run_span.attributes["revo.run_id"] == submit.run_id
    assert otlp_receiver.wait_for(trace_id, "tool run_linter").service == "agent-runner"
    assert otlp_receiver.wait_for(trace_id, "inference.chat publish").service == "agent-runner"
    assert otlp_receiver.wait_for(trace_id, "inference.chat process").service == "inference"
