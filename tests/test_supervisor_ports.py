"""The supervisor on a plan whose NATS and Postgres ports another program took after `revo
up` chose them (two platforms started at once on one machine): it moves them to free ports
instead of failing, since no service is connected to them yet. A plan of NATS and Postgres
only, so no service has to load."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from revo_up_helpers import platform_env, read_state, revo, temp_state_dir

from revo_cli.platform import new_plan
from revo_cli.state import save_state


def held_port(port: int) -> socket.socket | None:
    """A listening socket on `port`, as another program's server would hold it; None when
    another program (here, a neighbour's platform) really listens there already."""
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        holder.bind(("127.0.0.1", port))
    except OSError:
        holder.close()
        return None
    holder.listen()
    return holder


@pytest.fixture
def plan_env() -> Iterator[dict[str, str]]:
    state_dir = temp_state_dir()
    env = platform_env(state_dir)
    os.environ["REVO_STATE_DIR"] = str(state_dir)
    try:
        plan = new_plan(state_dir)
        plan.services = {}
        save_state(plan)
    finally:
        del os.environ["REVO_STATE_DIR"]
    yield env
    revo("down", env=env)
    shutil.rmtree(state_dir, ignore_errors=True)


def test_nats_and_postgres_ports_taken_before_the_first_start_are_replaced(plan_env):
    planned = read_state(plan_env)
    holders = [held_port(planned["nats_port"]), held_port(planned["postgres_port"])]
    supervisor = subprocess.Popen(
        [sys.executable, "-m", "revo_cli.supervisor"], env=plan_env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        state = wait_until_running(plan_env, within=90)
    finally:
        for holder in filter(None, holders):
            holder.close()

    assert state["nats_port"] != planned["nats_port"]
    assert state["nats_url"] == f"nats://127.0.0.1:{state['nats_port']}"
    assert state["postgres_port"] != planned["postgres_port"]
    assert f"127.0.0.1:{state['postgres_port']}/" in state["postgres_dsn"]
    assert state["nats"]["restarts"] == 0 and state["postgres"]["restarts"] == 0
    assert supervisor.poll() is None
    assert revo("status", env=plan_env).stdout.startswith("revo up: supervisor running")


def wait_until_running(env: dict[str, str], within: float) -> dict:
    end = time.monotonic() + within
    while time.monotonic() < end:
        state = read_state(env)
        if state["nats"]["status"] == state["postgres"]["status"] == "running":
            return state
        time.sleep(0.2)
    raise AssertionError(f"NATS and Postgres not running within {within} s: {state}")
