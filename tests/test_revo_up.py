"""`revo up` on a clean state dir: real NATS, Postgres, inference and agent-runner
processes; then status, ask, run, runs and down, as a user would run them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

REVO = str(Path(sys.executable).with_name("revo"))


def revo(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([REVO, *args], env=env, capture_output=True, text=True, timeout=timeout)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="module")
def platform():
    state_dir = Path(tempfile.mkdtemp(prefix="revo-up-"))
    state_dir.chmod(0o755)
    env = {**os.environ, "REVO_STATE_DIR": str(state_dir)}
    env.pop("NATS_URL", None)
    env.pop("NATS_CREDS", None)  # the CLI takes the operator's credentials `revo up` made
    up = revo("up", env=env, timeout=400)
    state = json.loads((state_dir / "state.json").read_text()) if up.returncode == 0 else {}
    yield up, env, state
    revo("down", env=env)


def test_revo_up_starts_everything_and_says_where_to_connect(platform):
    up, _, state = platform

    assert up.returncode == 0, up.stdout + up.stderr
    assert "revo is up in" in up.stdout
    assert state["nats_url"] in up.stdout
    assert state["postgres_dsn"] in up.stdout
    assert 'revo ask "' in up.stdout
    gateway_port = state["services"]["chat-gateway"]["http_port"]
    assert f"API        http://127.0.0.1:{gateway_port}/v1" in up.stdout
    assert f"Chat       http://127.0.0.1:{gateway_port}/ " in up.stdout


def test_revo_status_lists_the_inference_service_from_nats(platform):
    _, env, _ = platform

    status = revo("status", env=env)

    assert status.returncode == 0, status.stdout + status.stderr
    assert "inference" in status.stdout and "inference.chat" in status.stdout
    assert "agent_runner" in status.stdout and "runs.api.list" in status.stdout
    assert "cost_ledger" in status.stdout and "ledger.reserve" in status.stdout
    assert "memory" in status.stdout and "memory.recall" in status.stdout


def test_revo_ask_streams_an_answer_and_reports_usage(platform):
    _, env, _ = platform

    ask = revo("ask", "What is the capital of France?", "--max-tokens", "24", env=env)

    assert ask.returncode == 0, ask.stderr
    assert "Paris" in ask.stdout
    assert "completion tokens" in ask.stderr


def test_revo_cost_shows_the_asked_questions_usage_as_local(platform):
    _, env, _ = platform
    revo("ask", "Say hi.", "--max-tokens", "4", "--tenant", "cost-check", env=env)

    for _ in range(40):  # the ledger records the usage event within moments
        cost = revo("cost", "--tenant", "cost-check", env=env)
        if "smollm2-135m-instruct" in cost.stdout:
            break
        time.sleep(0.25)

    assert cost.returncode == 0, cost.stderr
    assert "smollm2-135m-instruct  local" in cost.stdout
    assert "local share 100.0%" in cost.stdout


def test_revo_ask_for_an_unknown_model_fails_clearly(platform):
    _, env, _ = platform

    ask = revo("ask", "hi", "--model", "nope", env=env)

    assert ask.returncode == 1
    assert "not_found: unknown chat model 'nope'" in ask.stderr


def test_revo_run_executes_the_assistant_and_revo_runs_lists_it(platform):
    _, env, _ = platform

    run = revo("run", "assistant", "Name one planet.", "--max-tokens", "2000", env=env)
    runs = revo("runs", env=env)

    assert run.returncode == 0, run.stdout + run.stderr
    run_id = run.stdout.split()[1] if run.stdout.startswith("run ") else ""
    assert run_id and run_id in runs.stdout, run.stdout + runs.stdout
    assert "finished" in runs.stdout


def test_revo_keys_create_gives_a_key_the_gateway_and_its_page_accept(platform):
    _, env, state = platform

    created = revo("keys", "create", "--tenant", "default", env=env)

    assert created.returncode == 0, created.stderr
    port = state["services"]["chat-gateway"]["http_port"]
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/whoami")
    request.add_header("Authorization", f"Bearer {created.stdout.strip()}")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert json.loads(response.read())["tenant"] == "default"
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as page:
        assert page.headers["Content-Type"].startswith("text/html")


def test_revo_memory_adds_searches_and_forgets_a_memory(platform):
    _, env, _ = platform
    scope = ["--tenant", "memory-check", "--repo", "acme/api"]

    added = revo("memory", "add", "CI runs the test suite with pytest on 4 workers.",
                 "--kind", "fact", "--tag", "ci", *scope, env=env)  # fmt: skip
    found = revo("memory", "search", "how are the tests run in CI?", *scope, env=env)
    elsewhere = revo("memory", "search", "how are the tests run in CI?", "--tenant", "other",
                     env=env)  # fmt: skip
    memory_id = added.stdout.split()[1] if added.stdout.startswith("created ") else "?"
    forgot = revo("memory", "forget", memory_id, *scope, env=env)
    after = revo("memory", "search", "how are the tests run in CI?", *scope, env=env)

    assert added.returncode == 0, added.stdout + added.stderr
    assert found.returncode == 0 and "pytest on 4 workers" in found.stdout, found.stderr
    assert "no memories found" in elsewhere.stdout
    assert forgot.returncode == 0 and "forgot 1 memories" in forgot.stdout, forgot.stderr
    assert "no memories found" in after.stdout


def test_a_second_revo_up_refuses_and_points_to_revo_down(platform):
    _, env, _ = platform

    again = revo("up", env=env)

    assert again.returncode == 1 and "already running" in again.stdout


def test_revo_down_stops_every_process_it_started(platform):
    _, env, state = platform
    pids = [state["nats_pid"], *(s["pid"] for s in state["services"].values())]

    down = revo("down", env=env)

    assert down.returncode == 0 and "revo is down" in down.stdout
    assert not any(alive(pid) for pid in pids)
    assert not (Path(env["REVO_STATE_DIR"]) / "state.json").exists()
    assert "not running" in revo("--nats-url", state["nats_url"], "status", env=env).stdout
