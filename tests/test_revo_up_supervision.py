"""`revo up`'s supervisor on a real platform (NATS, Postgres, every service as a process;
inference with the embedding model only, so no chat model loads): a service that keeps
crashing stops at the restart cap, a killed one comes back, `revo up` again starts only
what is missing, `revo logs` shows and follows a log, `revo down` stops it all.

The cost ledger starts without its price list (REVO_COST_LEDGER_PRICES_FILE points at a
file that is not there yet): that is the crash loop; a later test writes the file."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from revo_up_helpers import (
    REVO,
    alive,
    all_pids,
    platform_env,
    read_state,
    revo,
    temp_state_dir,
    wait_for_restart,
)

from revo_core import nats_jwt
from revo_core.bus import Bus
from revo_core.errors import BusUnauthorized
from revo_core.testing.fixtures import EMBED_ONLY_MODELS_YAML

PRICES = Path(__file__).parents[1] / "services/cost-ledger/revo_cost_ledger/prices.yaml"


@pytest.fixture(scope="module")
def platform():
    state_dir = temp_state_dir()
    models_file = state_dir / "embed-only-models.yaml"
    models_file.write_text(EMBED_ONLY_MODELS_YAML)
    env = platform_env(
        state_dir,
        REVO_INFERENCE_MODELS_FILE=str(models_file),
        REVO_COST_LEDGER_PRICES_FILE=str(state_dir / "prices.yaml"),
    )
    up = revo("up", env=env, timeout=400)
    yield up, env
    revo("down", env=env)
    shutil.rmtree(state_dir, ignore_errors=True)


def test_a_service_that_keeps_crashing_is_marked_failed_after_five_restarts(platform):
    up, env = platform

    status = revo("status", env=env)

    assert up.returncode == 1, up.stdout + up.stderr
    assert "error: cost-ledger failed (exit 1) after 5 restart(s)" in up.stdout, up.stdout
    assert "prices.yaml" in up.stdout  # the tail of its log says why
    ledger = next(line for line in status.stdout.splitlines() if "cost-ledger " in line)
    columns = ledger.split()
    assert columns[1:3] == ["failed", "-"] and columns[4] == "5", status.stdout
    assert status.returncode == 1
    for name in ("nats-server", "postgres", "inference", "agent-runner", "memory"):
        line = next(line for line in status.stdout.splitlines() if f"  {name} " in line)
        assert line.split()[1] == "running", status.stdout


def test_a_killed_service_is_back_and_ready_with_one_restart(platform):
    _, env = platform
    before = read_state(env)["services"]["memory"]["pid"]

    os.kill(before, signal.SIGKILL)
    killed_at = time.monotonic()
    record = wait_for_restart(env, "memory", before, within=60)
    back_after = time.monotonic() - killed_at
    status = revo("status", env=env)

    assert record["pid"] != before and alive(record["pid"])
    assert record["restarts"] == 1 and record["last_exit"] == "killed by SIGKILL"
    line = next(line for line in status.stdout.splitlines() if "  memory " in line)
    assert line.split()[1:5] == ["running", str(record["pid"]), str(record["http_port"]), "1"], (
        status.stdout
    )
    assert line.endswith("killed by SIGKILL")
    assert "memory.recall" in status.stdout, status.stdout  # it answers on NATS again
    print(f"memory back and ready {back_after:.1f} s after kill -9")


def test_revo_logs_follows_a_service_log_across_its_restart(platform):
    _, env = platform
    gateway = read_state(env)["services"]["chat-gateway"]["pid"]
    follow = subprocess.Popen(
        [REVO, "logs", "chat-gateway", "-f", "-n", "0"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        time.sleep(1)  # tail has opened the files
        os.kill(gateway, signal.SIGKILL)
        wait_for_restart(env, "chat-gateway", gateway, within=60)
        time.sleep(1)
    finally:
        follow.terminate()
    followed = follow.communicate(timeout=10)[0]

    assert '"event": "starting"' in followed, followed
    assert '"service": "chat-gateway"' in followed


def test_revo_logs_shows_a_services_log_and_an_unknown_name_lists_the_known_ones(platform):
    _, env = platform

    ledger = revo("logs", "cost-ledger", env=env)
    unknown = revo("logs", "ledger", env=env)

    assert ledger.returncode == 0, ledger.stderr
    assert "cost-ledger.stderr.log" in ledger.stdout and "prices.yaml" in ledger.stdout
    assert unknown.returncode == 2
    assert unknown.stderr.strip() == (
        "error: no service 'ledger'; one of: nats-server, postgres, inference, agent-runner, "
        "chat-gateway, cost-ledger, memory, integrations, supervisor"
    )


def test_killed_nats_and_postgres_come_back_on_their_ports_and_the_services_work_again(platform):
    _, env = platform
    before = read_state(env)
    scope = ["--tenant", "supervised", "--repo", "acme/api"]

    os.kill(before["postgres"]["pid"], signal.SIGKILL)
    os.kill(before["nats"]["pid"], signal.SIGKILL)
    nats = wait_for_restart(env, "nats-server", before["nats"]["pid"], within=60)
    postgres = wait_for_restart(env, "postgres", before["postgres"]["pid"], within=60)
    added = eventually(lambda: revo("memory", "add", "Deploys go out on Tuesdays.", *scope,
                                    env=env), within=60)  # fmt: skip
    found = revo("memory", "search", "when do deploys go out?", *scope, env=env)

    assert nats["restarts"] == 1 and nats["last_exit"] == "killed by SIGKILL"
    assert postgres["restarts"] >= 1 and alive(postgres["pid"])
    assert read_state(env)["nats_url"] == before["nats_url"]  # the services' URL still holds
    assert added.returncode == 0, added.stdout + added.stderr
    assert "Deploys go out on Tuesdays." in found.stdout, found.stdout + found.stderr


def test_revoking_a_ci_credential_reloads_the_platforms_nats_at_once(platform):
    _, env = platform
    creds = Path(env["REVO_STATE_DIR"]) / "acme-ci.creds"
    created = revo(
        "creds", "create", "--role", "ci", "--tenant", "acme", "--out", str(creds), env=env
    )
    assert created.returncode == 0, created.stderr
    url = read_state(env)["nats_url"]
    assert asyncio.run(_connects(url, creds))

    public_key = nats_jwt.creds_claims(creds.read_text())["sub"]
    revoked = revo("creds", "revoke", public_key, env=env)

    assert revoked.returncode == 0, revoked.stderr
    assert "the nats-server `revo up` runs here reloaded" in revoked.stdout
    assert not asyncio.run(_connects(url, creds))


async def _connects(url: str, creds: Path) -> bool:
    try:
        bus = await Bus.connect(url, "ci-check", connect_attempts=1, credentials=creds)
    except BusUnauthorized:
        return False
    await bus.close()
    return True


def eventually(
    command: Callable[[], subprocess.CompletedProcess], within: float
) -> subprocess.CompletedProcess:
    """The command's first success within `within` seconds, else its last failure."""
    end = time.monotonic() + within
    result = command()
    while result.returncode != 0 and time.monotonic() < end:
        time.sleep(1)
        result = command()
    return result


def test_revo_up_again_restarts_a_dead_supervisor_and_starts_only_what_is_missing(platform):
    _, env = platform
    shutil.copy(PRICES, Path(env["REVO_STATE_DIR"]) / "prices.yaml")  # the ledger's fix
    before = read_state(env)
    os.kill(before["supervisor_pid"], signal.SIGKILL)
    unsupervised = revo("status", env=env)

    again = revo("up", env=env, timeout=300)
    after = read_state(env)

    assert unsupervised.returncode == 1
    assert "supervisor not running (`revo up` starts it again)" in unsupervised.stdout
    assert again.returncode == 0, again.stdout + again.stderr
    assert "cost-ledger   ready after" in again.stdout
    assert "memory        already running" in again.stdout
    unchanged = {name: pid for name, pid in all_pids(before).items() if name != "cost-ledger"}
    assert {name: all_pids(after)[name] for name in unchanged} == unchanged
    assert after["supervisor_pid"] != before["supervisor_pid"] and alive(after["supervisor_pid"])
    assert revo("status", env=env).returncode == 0


def test_a_third_revo_up_finds_everything_running_and_starts_nothing(platform):
    _, env = platform
    before = read_state(env)

    again = revo("up", env=env)

    assert again.returncode == 0 and "already running" in again.stdout
    assert read_state(env) == before


def test_revo_down_stops_the_supervisor_and_every_process(platform):
    _, env = platform
    state = read_state(env)
    pids = [state["supervisor_pid"], *all_pids(state).values()]

    down = revo("down", env=env)

    assert down.returncode == 0 and "revo is down" in down.stdout
    assert not any(alive(pid) for pid in pids)
