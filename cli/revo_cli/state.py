"""What `revo up` started, kept in .revo/state.json so other commands can find it."""

from __future__ import annotations

import os
from pathlib import Path

import msgspec

DEFAULT_NATS_URL = "nats://127.0.0.1:4222"


class ServiceRecord(msgspec.Struct, kw_only=True):
    pid: int
    http_port: int
    log_file: str


class PlatformState(msgspec.Struct, kw_only=True):
    nats_url: str
    nats_pid: int
    nats_monitor_port: int
    postgres_dsn: str
    postgres_data: str
    services: dict[str, ServiceRecord] = {}


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
    state_file().parent.mkdir(parents=True, exist_ok=True)
    state_file().write_bytes(msgspec.json.format(msgspec.json.encode(state)))


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


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
