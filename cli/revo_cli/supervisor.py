"""The supervisor `revo up` leaves running: docker compose's `restart: unless-stopped` for
the embedded platform.

`python -m revo_cli.supervisor` runs detached, in its own session. It starts every process
of the plan in .revo/state.json that is not running (nats-server, then Postgres, then the
services), adopts those that are, and from then on restarts whatever exits: after a
backoff that doubles (0.5 s, 1 s, 2 s, ... at most 30 s), and at most 5 times in 60 s;
past that the process is marked `failed` and left down until the next `revo up`. It writes
each process's pid, status, restarts and last exit back to state.json for `revo status`.

SIGTERM (from `revo down` or `revo up`) ends the supervisor alone: what it watches keeps
running, for `revo down` to stop in order or a new supervisor to adopt.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import structlog

from revo_cli import platform
from revo_cli.state import (
    NATS,
    POSTGRES,
    PlatformState,
    ServiceRecord,
    load_state,
    pid_alive,
    save_state,
    state_dir,
)
from revo_core.embedded.nats_server import EmbeddedProcessError
from revo_core.embedded.ports import free_port, port_open
from revo_core.logging import configure_logging

log = structlog.get_logger()

TICK_S = 0.5
MAX_RESTARTS = 5
RESTART_WINDOW_S = 60.0
BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 30.0


def backoff(recent_restarts: int) -> float:
    return min(BACKOFF_FIRST_S * 2**recent_restarts, BACKOFF_MAX_S)


def describe_exit(returncode: int | None) -> str:
    """`exit 1`, `killed by SIGKILL`; unknown for a process that is not this supervisor's
    child (Postgres, which pg_ctl detaches, or one an earlier supervisor started)."""
    if returncode is None:
        return "exited (status unknown)"
    if returncode < 0:
        return f"killed by {signal.Signals(-returncode).name}"
    return f"exit {returncode}"


class Supervisor:
    def __init__(self, state: PlatformState, base: Path) -> None:
        self.state = state
        self.base = base
        # The processes this supervisor started itself: their exit status is known.
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self.stopping = False

    def stop(self, *_: object) -> None:
        self.stopping = True

    def run(self) -> None:
        self.state.supervisor_pid = os.getpid()
        for name, record in self.state.processes().items():
            if self.stopping:
                break
            if pid_alive(record.pid):
                log.info("adopted", process=name, pid=record.pid, status=record.status)
            elif self._dependencies_up(name):
                self.start(name, record)
            else:
                record.status = "waiting"
            save_state(self.state)
        while not self.stopping:
            # A list, not a generator: every process is looked at on every tick.
            changed = [self.check(name, record) for name, record in self.state.processes().items()]
            if any(changed):
                save_state(self.state)
            time.sleep(TICK_S)
        save_state(self.state)
        log.info("supervisor_stopped")

    def check(self, name: str, record: ServiceRecord) -> bool:
        """One look at one process; True when its record changed."""
        if record.status in ("starting", "running"):
            if not self._alive(name, record):
                self.exited(name, record, self._exit_status(name))
                return True
            if record.status == "starting" and self._ready(name, record):
                record.status = "running"
                log.info("ready", process=name, pid=record.pid, after_s=self._uptime(record))
                return True
        elif record.status == "waiting" and self._dependencies_up(name):
            self.start(name, record)
            return True
        elif record.status == "restarting" and time.time() >= record.retry_at:
            if not self._dependencies_up(name):
                return False  # the restart waits for NATS and Postgres, and costs nothing
            record.restarts += 1
            record.recent_restarts.append(time.time())
            self.start(name, record)
            return True
        return False

    def exited(self, name: str, record: ServiceRecord, how: str) -> None:
        _kill_leftovers(name, record.pid)
        now = time.time()
        record.pid = 0
        record.last_exit = how
        record.recent_restarts = [t for t in record.recent_restarts if now - t < RESTART_WINDOW_S]
        if len(record.recent_restarts) >= MAX_RESTARTS:
            record.status = "failed"
            log.error("failed", process=name, last_exit=how, restarts=record.restarts,
                      reason=f"{MAX_RESTARTS} restarts in {RESTART_WINDOW_S:.0f} s")  # fmt: skip
            return
        delay = backoff(len(record.recent_restarts))
        record.status = "restarting"
        record.retry_at = now + delay
        log.warning("exited", process=name, last_exit=how, restart_in_s=delay)

    def start(self, name: str, record: ServiceRecord) -> None:
        record.started_at = time.time()
        if name in self.state.services and port_open(record.http_port):
            _move_to_a_free_port(name, record)
        elif name in (NATS, POSTGRES) and not self._services_alive():
            ports = (self.state.nats_port, self.state.postgres_port)
            platform.move_off_taken_ports(self.state, name)
            if ports != (self.state.nats_port, self.state.postgres_port):
                log.warning("port_taken", process=name, nats_url=self.state.nats_url,
                            postgres_port=self.state.postgres_port)  # fmt: skip
        try:
            process = self._launch(name)
        except (EmbeddedProcessError, OSError, subprocess.SubprocessError) as exc:
            self.exited(name, record, f"did not start: {' '.join(str(exc).split())[:300]}")
            return
        record.pid = process.pid if process is not None else _postmaster_pid(self.state)
        record.status = "starting"
        if process is not None:
            self.children[name] = process
        log.info("started", process=name, pid=record.pid, restarts=record.restarts)

    def _launch(self, name: str) -> subprocess.Popen[bytes] | None:
        """Start one process; its Popen, or None for Postgres (pg_ctl daemonizes it)."""
        if name == NATS:
            return platform.nats_server(self.state, self.base).start().process
        if name == POSTGRES:
            platform.postgres(self.state).start()
            return None
        return platform.service_process(name, self.state, self.base).start().process

    def _services_alive(self) -> bool:
        return any(pid_alive(record.pid) for record in self.state.services.values())

    def _dependencies_up(self, name: str) -> bool:
        """A service needs NATS and Postgres running; they need nothing."""
        if name in (NATS, POSTGRES):
            return True
        return self.state.nats.status == "running" and self.state.postgres.status == "running"

    def _alive(self, name: str, record: ServiceRecord) -> bool:
        child = self.children.get(name)
        if child is not None and child.pid == record.pid:
            return child.poll() is None
        return pid_alive(record.pid)

    def _exit_status(self, name: str) -> str:
        child = self.children.pop(name, None)
        return describe_exit(child.returncode if child is not None else None)

    def _ready(self, name: str, record: ServiceRecord) -> bool:
        if name == NATS:
            return port_open(self.state.nats_port)
        if name == POSTGRES:
            return port_open(self.state.postgres_port)
        ready = platform.service_process(name, self.state, self.base).is_ready()
        return ready and _listens_on(record.pid, record.http_port)

    @staticmethod
    def _uptime(record: ServiceRecord) -> float:
        return round(time.time() - record.started_at, 1)


def _move_to_a_free_port(name: str, record: ServiceRecord) -> None:
    """Another program took the port while the service was down: it would not start (or,
    worse, the other program's /readyz would pass for it). Services find each other over
    NATS, so a service's HTTP port may change, as `revo up` already does for a busy one.
    NATS and Postgres keep theirs: what runs is connected to them."""
    taken, record.http_port = record.http_port, free_port()
    log.warning("port_taken", process=name, port=taken, new_port=record.http_port)


def _listens_on(pid: int, port: int) -> bool:
    """Whether the process itself holds the port: another program may answer /readyz on a
    port the service failed to bind (it then exits, and must not pass for ready meanwhile)."""
    try:
        sockets = psutil.Process(pid).net_connections(kind="tcp")
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False
    return any(s.status == psutil.CONN_LISTEN and s.laddr.port == port for s in sockets)


def _postmaster_pid(state: PlatformState) -> int:
    """The first line of postmaster.pid, written by the server pg_ctl started."""
    pid_file = Path(state.postgres_data) / "postmaster.pid"
    with contextlib.suppress(OSError, ValueError, IndexError):
        return int(pid_file.read_text().splitlines()[0])
    return 0


def _kill_leftovers(name: str, pid: int) -> None:
    """What a dead service spawned (vLLM's engine process) goes with it, as systemd's
    control-group kill does: each service leads its own process group."""
    if name in (NATS, POSTGRES) or pid <= 0:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def main() -> int:
    configure_logging("revo-supervisor", json=True, stream=sys.stdout)
    state = load_state()
    if state is None:
        log.error("no_plan", state_dir=str(state_dir()))
        return 1
    supervisor = Supervisor(state, state_dir())
    signal.signal(signal.SIGTERM, supervisor.stop)
    signal.signal(signal.SIGINT, supervisor.stop)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    supervisor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
