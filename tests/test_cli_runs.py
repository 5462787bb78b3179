"""`revo run` and `revo runs` as a user runs them: a real CLI process against a real
agent-runner, whose model is the scripted one of the test session."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from revo_contracts.runs import RunGetRequest, RunSubmit
from revo_core.embedded.ports import free_port
from revo_core.runs import RunFollower, event_type, get_run, new_run_id, submit_run
from revo_core.testing.fixtures import nats_server_of
from revo_core.testing.scripted_model import Reply, Script, call, text

CLI_TIMEOUT_S = 30


@dataclass
class Cli:
    status: int
    stdout: str
    stderr: str

    @property
    def run_id(self) -> str:
        """`revo run` names the run on its first line: `run <id> (<agent>, ...)`."""
        return self.stdout.splitlines()[0].split()[1]


def revo_args(nats_url: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "revo_cli.main", "--nats-url", nats_url, *args]


async def start_revo(nats_url: str, *args: str, cwd: Path | None = None):
    # A subprocess of the test's event loop, so the scripted model keeps answering meanwhile.
    return await asyncio.create_subprocess_exec(
        *revo_args(nats_url, *args),
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def revo(nats_url: str, *args: str, cwd: Path | None = None) -> Cli:
    process = await start_revo(nats_url, *args, cwd=cwd)
    stdout, stderr = await asyncio.wait_for(process.communicate(), CLI_TIMEOUT_S)
    return Cli(process.returncode or 0, stdout.decode(), stderr.decode())


async def read_until(stream: asyncio.StreamReader, marker: str) -> str:
    """What the CLI printed up to and including the line holding `marker`."""
    seen = ""
    async with asyncio.timeout(CLI_TIMEOUT_S):
        while marker not in seen:
            line = await stream.readline()
            assert line, f"the CLI ended before printing {marker!r}; it printed:\n{seen}"
            seen += line.decode()
    return seen


async def finish(process, already: str = "") -> Cli:
    stdout, stderr = await asyncio.wait_for(process.communicate(), CLI_TIMEOUT_S)
    return Cli(process.returncode, already + stdout.decode(), stderr.decode())


@pytest.fixture
def default_script(scripted_model):
    """Scripts runs whose id the CLI makes up; other tests share the model, so reset it."""

    def use(*replies: Reply) -> None:
        scripted_model.default = Script(list(replies))

    yield use
    scripted_model.default = None


@pytest.fixture
async def gate() -> AsyncIterator[asyncio.Event]:
    """Holds a scripted reply until set; set at the end so the scripted model never hangs."""
    event = asyncio.Event()
    yield event
    event.set()


@pytest.fixture(scope="module")
async def tool_run(scripted_runner, scripted_model, scripted_nats, tmp_path_factory) -> Cli:
    """One `revo run` of the scripted agent that reads a file, then answers; run once."""
    workdir = tmp_path_factory.mktemp("cli")
    (workdir / "repo").mkdir()
    (workdir / "repo" / "notes.txt").write_text("the answer is 42\n")
    scripted_model.default = Script(
        [call("read_file", path="notes.txt"), call("final_answer", answer="It is 42.")]
    )
    # A relative --repo: the CLI must make it absolute, the runner has another cwd.
    args = ("run", "scripted", "what is the answer?", "--repo", "repo")
    try:
        return await revo(scripted_nats.url, *args, cwd=workdir)
    finally:
        scripted_model.default = None


# -- revo run ------------------------------------------------------------------------------


async def test_a_chat_run_streams_the_text_and_exits_0(
    scripted_runner, scripted_nats, default_script
):
    default_script(text("Hello there, how can I help?"))

    cli = await revo(scripted_nats.url, "run", "chatty", "hi")

    assert cli.status == 0, cli.stderr
    assert cli.stdout.startswith(f"run {cli.run_id} (chatty, tenant default)")
    assert cli.stdout.count("Hello there, how can I help?") == 1
    assert "started on runner runner-scripted, attempt 1" in cli.stdout
    assert "finished · 60 tokens · 1 step" in cli.stdout


async def test_a_tool_run_shows_the_tool_call_its_result_and_the_final_answer(tool_run):
    assert tool_run.status == 0, tool_run.stderr
    assert '→ read_file(path="notes.txt")' in tool_run.stdout
    assert "← ok: notes.txt: 1 lines" in tool_run.stdout
    assert "\nIt is 42.\n" in tool_run.stdout
    # Tool calls are shown as events, never as the model's raw JSON.
    assert '"name"' not in tool_run.stdout


async def test_run_json_prints_one_json_line_per_event_and_delta(
    scripted_runner, scripted_nats, default_script
):
    default_script(text("Hello in JSON."))

    cli = await revo(scripted_nats.url, "run", "chatty", "hi", "--json")

    assert cli.status == 0, cli.stderr
    lines = [json.loads(line) for line in cli.stdout.splitlines()]
    assert lines[0]["type"] == "queued" and lines[-1]["type"] == "finished"
    assert "".join(line["delta"] for line in lines if "delta" in line) == "Hello in JSON."


async def test_a_run_of_an_unknown_agent_fails_with_exit_1(scripted_runner, scripted_nats):
    cli = await revo(scripted_nats.url, "run", "nosuchagent", "hi")

    assert cli.status == 1
    assert "failed [not_found]: unknown agent 'nosuchagent'" in cli.stderr


async def test_run_exits_2_when_nothing_listens_on_the_nats_url():
    cli = await revo(f"nats://127.0.0.1:{free_port()}", "run", "assistant", "hi")

    assert cli.status == 2
    assert "cannot reach NATS at nats://127.0.0.1:" in cli.stderr
    assert "Traceback" not in cli.stderr


async def test_run_exits_2_when_no_agent_runner_ever_came_to_that_nats(tmp_path, bus_authority):
    lonely = nats_server_of(tmp_path / "nats", bus_authority)
    try:
        cli = await revo(lonely.url, "run", "assistant", "hi")
    finally:
        lonely.stop()

    assert cli.status == 2
    assert "no agent-runner answers on NATS" in cli.stderr
    assert "Traceback" not in cli.stderr


async def test_ctrl_c_cancels_the_run_and_exits_130(
    scripted_runner, scripted_nats, default_script, gate
):
    default_script(Reply(gate=gate))
    process = await start_revo(scripted_nats.url, "run", "scripted", "wait for me")
    seen = await read_until(process.stdout, "started on runner")

    process.send_signal(signal.SIGINT)
    cli = await finish(process, seen)

    assert cli.status == 130, cli.stderr
    assert f"interrupted: cancelling {cli.run_id}" in cli.stderr
    assert "cancelled: cancelled from the CLI" in cli.stdout


async def test_a_question_of_the_run_is_answered_with_runs_answer(
    scripted_runner, scripted_nats, default_script
):
    default_script(
        call("ask_user", question="Which branch?"),
        call("final_answer", answer="Using main."),
    )
    process = await start_revo(scripted_nats.url, "run", "scripted", "deploy it")
    seen = await read_until(process.stdout, "answer with: revo runs answer")
    run_id = seen.split()[1]

    answered = await revo(scripted_nats.url, "runs", "answer", run_id, "main")
    cli = await finish(process, seen)

    assert "waiting for input: Which branch?" in seen
    assert answered.status == 0 and f"run {run_id} took the answer" in answered.stdout
    assert cli.status == 0, cli.stderr
    assert "← ok: main" in cli.stdout and "Using main." in cli.stdout


# -- revo runs -----------------------------------------------------------------------------


async def test_runs_lists_a_finished_run_with_its_agent_status_and_task(tool_run, scripted_nats):
    cli = await revo(scripted_nats.url, "runs", "--agent", "scripted", "--tenant", "default")

    assert cli.status == 0, cli.stderr
    header = cli.stdout.splitlines()[0].split()
    assert header == ["RUN", "AGENT", "TENANT", "STATUS", "STEPS", "TOKENS", "AGE", "TOOK", "TASK"]
    row = next(line for line in cli.stdout.splitlines() if line.startswith(tool_run.run_id))
    assert row.split()[1:6] == ["scripted", "default", "finished", "2", "120"]
    assert row.endswith("what is the answer?")


async def test_runs_says_so_when_none_match(scripted_runner, scripted_nats):
    cli = await revo(scripted_nats.url, "runs", "--tenant", "nobody-here")

    assert cli.status == 0
    assert cli.stdout.strip() == "no runs match"


async def test_runs_show_prints_the_summary_the_event_log_and_the_answer(tool_run, scripted_nats):
    cli = await revo(scripted_nats.url, "runs", "show", tool_run.run_id)

    assert cli.status == 0, cli.stderr
    lines = cli.stdout.splitlines()
    assert lines[0] == f"run       {tool_run.run_id}"
    events = lines[lines.index("events:") + 1 : lines.index("answer:") - 1]
    assert [int(line.split()[0]) for line in events] == list(range(1, 9))
    assert [line.split()[2] for line in events][:3] == ["queued", "started", "model_call"]
    assert any('→ read_file(path="notes.txt")' in line for line in events)
    assert lines[-1] == "It is 42."


async def test_runs_show_of_an_unknown_run_exits_1_and_says_so(scripted_runner, scripted_nats):
    cli = await revo(scripted_nats.url, "runs", "show", "nosuchrun")

    assert cli.status == 1
    assert "no run 'nosuchrun'" in cli.stderr
    assert "Traceback" not in cli.stderr


async def test_runs_cancel_stops_a_run_that_waits_on_its_model(
    scripted_runner, scripted_model, scripted_nats, scripted_bus, gate
):
    submit = RunSubmit(run_id=new_run_id(), tenant="acme", agent="scripted", task="hold on")
    scripted_model.script(submit.run_id, Reply(gate=gate))
    await submit_run(scripted_bus, submit)
    await until_started(scripted_bus, submit)

    cli = await revo(scripted_nats.url, "runs", "cancel", submit.run_id)

    assert cli.status == 0, cli.stderr
    assert cli.stdout.splitlines() == [
        f"cancelling {submit.run_id}",
        "cancelled: cancelled from the CLI",
    ]
    detail = await get_run(scripted_bus, RunGetRequest(run_id=submit.run_id))
    assert detail.run.status == "cancelled"


async def test_runs_cancel_of_an_ended_run_says_it_has_ended(tool_run, scripted_nats):
    cli = await revo(scripted_nats.url, "runs", "cancel", tool_run.run_id)

    assert cli.status == 1
    assert f"run {tool_run.run_id} has already ended (finished)" in cli.stderr


async def until_started(bus, submit: RunSubmit) -> None:
    """Until a runner holds the run (its model then waits on the gate)."""
    async with RunFollower(bus, submit.tenant, submit.run_id, tokens=False) as follower:
        async with asyncio.timeout(CLI_TIMEOUT_S):
            async for event in follower:
                if event_type(event) == "started":
                    return
