"""Running the real `revo` command against a platform in a temp REVO_STATE_DIR."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

REVO = str(Path(sys.executable).with_name("revo"))


def revo(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([REVO, *args], env=env, capture_output=True, text=True, timeout=timeout)


def alive(pid: int) -> bool:
    """A zombie is dead: only its parent's (or init's) reaping is left to happen."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def temp_state_dir() -> Path:
    state_dir = Path(tempfile.mkdtemp(prefix="revo-up-"))
    state_dir.chmod(0o755)  # Postgres runs as its own user and must reach its data dir
    return state_dir


def platform_env(state_dir: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "REVO_STATE_DIR": str(state_dir), **extra}
    env.pop("NATS_URL", None)
    env.pop("NATS_CREDS", None)  # the CLI takes the operator's credentials `revo up` made
    return env


def read_state(env: dict[str, str]) -> dict:
    return json.loads((Path(env["REVO_STATE_DIR"]) / "state.json").read_text())


def wait_for_restart(env: dict[str, str], name: str, old_pid: int, within: float) -> dict:
    """The supervisor's record of `name` once a new process of it is ready."""
    end = time.monotonic() + within
    while time.monotonic() < end:
        record = process_record(read_state(env), name)
        if record["status"] == "running" and record["pid"] not in (0, old_pid):
            return record
        time.sleep(0.2)
    raise AssertionError(f"{name} not back within {within} s: {record}")


def process_record(state: dict, name: str) -> dict:
    if name == "nats-server":
        return state["nats"]
    if name == "postgres":
        return state["postgres"]
    return state["services"][name]


def all_pids(state: dict) -> dict[str, int]:
    pids = {"nats-server": state["nats"]["pid"], "postgres": state["postgres"]["pid"]}
    pids.update({name: record["pid"] for name, record in state["services"].items()})
    return pids
