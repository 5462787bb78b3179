"""Settings of the agent-runner (env prefix REVO_AGENT_RUNNER_)."""

from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from revo_core.settings import ServiceSettings, database_url_field

DEFAULT_AGENTS_FILE = Path(__file__).with_name("agents.yaml")


def _default_runner_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class AgentRunnerSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="REVO_AGENT_RUNNER_", extra="ignore")

    http_port: int = 8102
    database_url: str = database_url_field("REVO_AGENT_RUNNER_")
    agents_file: Path = DEFAULT_AGENTS_FILE
    # Runs executed at once by this replica; more wait in the RUNS stream.
    max_concurrent_runs: int = 8
    # JetStream redelivers a run whose runner sent no heartbeat for this long.
    ack_wait_s: float = 30.0
    heartbeat_s: float = 10.0
    # How often rows left running with a stale claim are checked against their event log
    # (and once at start): one whose log has ended takes that end (reconcile.py).
    reconcile_interval_s: float = 60.0
    # A run delivered this many times (its runners keep dying) ends as failed: gave_up.
    max_attempts: int = 5
    # Per-run checkouts live under here, one directory per run, removed when it ends.
    workspace_root: Path = Path(tempfile.gettempdir()) / "revo-workspaces"
    runner_id: str = Field(default_factory=_default_runner_id)
    # Turns of earlier runs in the same session given to the model as history.
    session_history_turns: int = 10
    # Tool output beyond this many characters is cut before it goes back to the model.
    max_tool_output_chars: int = 16_000
    # How long recall and remember wait for the memory service; past it the tool fails
    # (and an agent's recall before its first step is skipped).
    memory_timeout_s: float = 5.0
