"""What `revo up` started, kept in .revo/state.json so other commands can find it.

`revo up` writes the plan (ports, URLs) before it starts the supervisor; from then on only
the supervisor (cli/revo_cli/supervisor.py) writes it, with each process's pid, status,
restarts and last exit. Writes go through a rename, so a reader never sees half a file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import msgspec

from revo_core.bus import Bus

DEFAULT_NATS_URL = "nats://127.0.0.1:4222"
NATS = "nats-server"
POSTGRES = "postgres"

# waiting: for NATS and Postgres, before its first start; starting: launched, not ready yet;
# running: ready; restarting: exited, waiting out its backoff; failed: exited too often (or
# did not start), left down until the next `revo up`.
ProcessStatus = Literal["waiting", "starting", "running", "restarting", "failed"]


class ServiceRecord(msgspec.Struct, kw_only=True):
    """One supervised process: nats-server, postgres or a service."""

    pid: int = 0
    http_port: int = 0
    log_file: str = ""
    status: ProcessStatus = "starting"
    restarts: int = 0
    last_exit: str = ""
    started_at: float = 0.0  # wall time of the latest start
    # Wall times of the restarts that count towards the cap; `revo up` clears them.
    recent_restarts: list[float] = []
    retry_at: float = 0.0


class PlatformState(msgspec.Struct, kw_only=True):
    nats_url: str
    nats_port: int
    nats_monitor_port: int
    postgres_dsn: str
    postgres_port: int
    postgres_data: str
    supervisor_pid: int = 0
    nats: ServiceRecord = msgspec.field(default_factory=ServiceRecord)
    postgres: ServiceRecord = msgspec.field(default_factory=ServiceRecord)
    services: dict[str, ServiceRecord] = {}

    def processes(self) -> dict[str, ServiceRecord]:
        """Every supervised process by name, in start order."""
        return {NATS: self.nats, POSTGRES: self.postgres, **self.services}


def state_dir() -> Path:
    return Path(os.environ.get("REVO_STATE_DIR", ".revo")).resolve()


def state_file() -> Path:
    return state_dir() / "state.json"


def load_state() -> PlatformState | None:
    path = state_file()
    if not path.exists():
        return None
    return msgspec.json.decode(path.read_bytes(), type=PlatformState)


def save_state(state: PlatformState) -> None:
    path = state_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.write_bytes(msgspec.json.format(msgspec.json.encode(state)))
    partial.replace(path)


def clear_state() -> None:
    state_file().unlink(missing_ok=True)


def nats_url(explicit: str | None = None) -> str:
    """--nats-url, else NATS_URL, else what `revo up` started, else the default."""
    if explicit:
        return explicit
    if os.environ.get("NATS_URL"):
        return os.environ["NATS_URL"]
    state = load_state()
    return state.nats_url if state else DEFAULT_NATS_URL


def operator_creds_file() -> Path:
    """Where `revo up` keeps the operator's NATS credentials."""
    return state_dir() / "nats-auth" / "creds" / "operator.creds"


def nats_creds() -> str | None:
    """--nats-creds (main puts it in NATS_CREDS), else NATS_CREDS, else the operator's
    credentials `revo up` made here, else none (a nats-server without authentication)."""
    if os.environ.get("NATS_CREDS"):
        return os.environ["NATS_CREDS"]
    own = operator_creds_file()
    return str(own) if own.exists() else None


async def connect_cli(url: str) -> Bus:
    """The CLI's connection: one quick try (a person is waiting), as the identity of
    nats_creds()."""
    return await Bus.connect(
        url, name="revo-cli", connect_timeout=1, connect_attempts=1, credentials=nats_creds()
    )


def pid_alive(pid: int) -> bool:
    """A zombie counts as dead: a process whose parent has not reaped it yet is gone."""
    import psutil  # the `embedded` extra: only a machine that ran `revo up` asks

    if pid <= 0:
        return False
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True
