"""`revo up` and `revo down`: the embedded platform on this machine.

Real nats-server (JetStream), real Postgres 16 + pgvector (data under .revo/), then each
service as its own process. `revo up` writes the plan (ports, URLs) into .revo/state.json
and leaves a supervisor (cli/revo_cli/supervisor.py) behind that starts what is missing and
restarts what exits; every one of them outlives the terminal that started it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from revo_cli.state import (
    NATS,
    POSTGRES,
    PlatformState,
    ServiceRecord,
    clear_state,
    load_state,
    operator_creds_file,
    pid_alive,
    save_state,
    state_dir,
)
from revo_contracts.bus_identities import OPERATOR
from revo_core.bus_authority import BusAuthority
from revo_core.embedded.nats_server import NatsServer
from revo_core.embedded.ports import free_port, port_open
from revo_core.embedded.postgres import Postgres
from revo_core.embedded.service_process import ServiceProcess

# Service name -> (module, env var of its HTTP port, default port). Later services join here.
SERVICES: dict[str, tuple[str, str, int]] = {
    "inference": ("revo_inference", "REVO_INFERENCE_HTTP_PORT", 8101),
    "agent-runner": ("revo_agent_runner", "REVO_AGENT_RUNNER_HTTP_PORT", 8102),
    "chat-gateway": ("revo_chat_gateway", "REVO_CHAT_GATEWAY_HTTP_PORT", 8080),
    "cost-ledger": ("revo_cost_ledger", "REVO_COST_LEDGER_HTTP_PORT", 8104),
    "memory": ("revo_memory", "REVO_MEMORY_HTTP_PORT", 8103),
    "integrations": ("revo_integrations", "REVO_INTEGRATIONS_HTTP_PORT", 8105),
}
SUPERVISOR = "supervisor"
READY_TIMEOUT_S = 300
# The supervisor may be inside a Postgres or NATS start (bounded by their own timeouts).
SUPERVISOR_STOP_TIMEOUT_S = 70


def _port(preferred: int) -> int:
    return preferred if not port_open(preferred) else free_port()


def say(text: str) -> None:
    print(text, flush=True)


# -- what each supervised process is: small functions the supervisor calls to (re)start one --


def nats_server(state: PlatformState, base: Path) -> NatsServer:
    """Every connection to it authenticates with a credential of this platform's authority."""
    return NatsServer(
        base / "nats",
        port=state.nats_port,
        monitor_port=state.nats_monitor_port,
        authority=bus_authority(base),  # read again at each start: revocations since count
    )


def postgres(state: PlatformState) -> Postgres:
    return Postgres(Path(state.postgres_data), state.postgres_port)


def service_process(name: str, state: PlatformState, base: Path) -> ServiceProcess:
    module, port_env, _ = SERVICES[name]
    record = state.services[name]
    env = {"NATS_URL": state.nats_url, port_env: str(record.http_port), "OTEL_SERVICE_NAME": name}
    env.update(_own_env(name, state, base))
    return ServiceProcess(module, record.http_port, env, Path(record.log_file))


def bus_authority(base: Path) -> BusAuthority:
    """The NATS authority of this platform: made on the first `revo up`, then reused."""
    return BusAuthority.load_or_create(base / "nats-auth")


def _own_env(name: str, state: PlatformState, base: Path) -> dict[str, str]:
    """What one service needs beyond NATS and its port: its own NATS credentials first."""
    creds = {"NATS_CREDS": str(bus_authority(base).creds_file(name))}
    return creds | _service_env(name, state, base)


def _service_env(name: str, state: PlatformState, base: Path) -> dict[str, str]:
    if name == "agent-runner":
        return {
            "REVO_AGENT_RUNNER_DATABASE_URL": state.postgres_dsn,
            "REVO_AGENT_RUNNER_WORKSPACE_ROOT": str(base / "workspaces"),
        }
    if name == "chat-gateway":
        return {"REVO_CHAT_GATEWAY_DATABASE_URL": state.postgres_dsn}
    if name == "cost-ledger":
        return {"REVO_COST_LEDGER_DATABASE_URL": state.postgres_dsn}
    if name == "memory":
        return {"REVO_MEMORY_DATABASE_URL": state.postgres_dsn}
    if name == "integrations":
        return {
            "REVO_INTEGRATIONS_DATABASE_URL": state.postgres_dsn,
            "REVO_INTEGRATIONS_SECRET_KEYS": integrations_secret_key(base),
        }
    return {}


def integrations_secret_key(base: Path) -> str:
    """The key that encrypts tenants' integration secrets here: made on the first `revo up`
    (owner-only file), then reused, since rows sealed with it must stay readable."""
    key_file = base / "integrations-secret.key"
    if not key_file.exists():
        from revo_integrations.secret_box import new_key

        key_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(new_key())
    return key_file.read_text().strip()


def log_files(base: Path) -> dict[str, list[Path]]:
    """Each process's log files, by the name `revo logs` takes (the layout under .revo/)."""
    logs = base / "logs"
    files = {
        NATS: [base / "nats" / "nats-server.log"],
        POSTGRES: [base / "postgres.log"],  # Postgres writes it beside its data directory
    }
    for name in SERVICES:
        files[name] = [logs / f"{name}.log", logs / f"{name}.stderr.log"]
    files[SUPERVISOR] = [logs / f"{SUPERVISOR}.log"]
    return files


# -- the plan --------------------------------------------------------------------------------


def new_plan(base: Path) -> PlatformState:
    """Ports for everything: the usual ones, or free ones where those are taken."""
    nats_port, pg_port = _port(4222), _port(5433)
    state = PlatformState(
        nats_url=f"nats://127.0.0.1:{nats_port}",
        nats_port=nats_port,
        nats_monitor_port=_port(8222),
        postgres_dsn=Postgres(base / "postgres", pg_port).dsn,
        postgres_port=pg_port,
        postgres_data=str(base / "postgres"),
    )
    for name, (_, _, default_port) in SERVICES.items():
        log_file = str(base / "logs" / f"{name}.log")
        state.services[name] = ServiceRecord(http_port=_port(default_port), log_file=log_file)
    return state


def move_off_taken_ports(state: PlatformState, name: str) -> None:
    """NATS's or Postgres's ports, where another program took them since they were chosen.
    Only while no service runs: a running service stays connected to the URL it was given."""
    if name == NATS:
        if port_open(state.nats_port):
            state.nats_port = free_port()
            state.nats_url = f"nats://127.0.0.1:{state.nats_port}"
        if port_open(state.nats_monitor_port):
            state.nats_monitor_port = free_port()
    elif name == POSTGRES and port_open(state.postgres_port):
        state.postgres_port = free_port()
        state.postgres_dsn = postgres(state).dsn


def resumed_plan(state: PlatformState) -> PlatformState:
    """The same ports (what still runs is connected to them), and a fresh restart budget:
    `revo up` is someone asking for another try at what had failed."""
    for record in state.processes().values():
        record.recent_restarts = []
        record.retry_at = 0.0
        if not pid_alive(record.pid):
            record.status = "starting"
    state.supervisor_pid = 0
    return state


def alive_processes(state: PlatformState | None) -> set[str]:
    if state is None:
        return set()
    return {name for name, record in state.processes().items() if pid_alive(record.pid)}


# -- revo up ---------------------------------------------------------------------------------


def up() -> int:
    started = time.monotonic()
    base = state_dir()
    base.mkdir(parents=True, exist_ok=True)
    # The operator's credentials (what the CLI speaks with) exist before anything needs them.
    bus_authority(base).creds_file(OPERATOR)
    state = load_state()
    if state is not None and _fully_running(state):
        say(f"revo is already running (NATS at {state.nats_url}), every process is up;")
        say("`revo status` lists them, `revo down` stops them.")
        return 0
    _prepare_model()
    if state is not None:
        _stop_supervisor(state)
        state = load_state() or state
    alive = alive_processes(state)
    state = resumed_plan(state) if state is not None and alive else new_plan(base)
    save_state(state)
    supervisor = _start_supervisor(base)
    return _wait_for_platform(base, supervisor, alive, started)


def _fully_running(state: PlatformState) -> bool:
    return pid_alive(state.supervisor_pid) and all(
        record.status == "running" and pid_alive(record.pid)
        for record in state.processes().values()
    )


def _prepare_model() -> None:
    from revo_inference.prepare_model import is_prepared, prepare

    if not is_prepared():
        say("preparing the embedded model (SmolLM2-135M-Instruct, once, ~40 s)...")
    prepare()


def _start_supervisor(base: Path) -> subprocess.Popen[bytes]:
    log_file = log_files(base)[SUPERVISOR][0]
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "revo_cli.supervisor"],
            env={**os.environ, "REVO_STATE_DIR": str(base)},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # outlives the terminal, and a Ctrl-C in it
        )


def _wait_for_platform(
    base: Path, supervisor: subprocess.Popen[bytes], already: set[str], started: float
) -> int:
    """Say each process as it becomes ready; 1 when one failed or the wait ran out."""
    told: set[str] = set()
    waiting_said = False
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        state = load_state()
        if state is None or supervisor.poll() is not None:
            say(f"error: the supervisor stopped; its log: {log_files(base)[SUPERVISOR][0]}")
            return 1
        for name, record in state.processes().items():
            if name in told or record.status not in ("running", "failed"):
                continue
            told.add(name)
            if record.status == "failed":
                return _say_failed(name, record, base)
            _say_ready(name, state, name in already, time.monotonic() - started)
        if told == set(state.processes()):
            _print_ready(state, time.monotonic() - started)
            return 0
        if not waiting_said and {NATS, POSTGRES} <= told:
            waiting_said = True
            missing = [n for n in state.services if n not in told]
            model = " (loading the model takes ~30 s)" if "inference" in missing else ""
            say(f"  waiting for {', '.join(missing)}{model}...")
        time.sleep(0.25)
    say(f"error: not everything was ready after {READY_TIMEOUT_S} s; `revo status` says what")
    return 1


def _say_ready(name: str, state: PlatformState, already: bool, seconds: float) -> None:
    record = state.processes()[name]
    if already:
        say(f"  {name:<13} already running (pid {record.pid})")
    elif name == NATS:
        store = state_dir() / "nats"
        say(f"  nats-server   {state.nats_url}  (JetStream, store {store}, credentials required)")
    elif name == POSTGRES:
        say(f"  postgres 16   {state.postgres_dsn}  (pgvector, data {state.postgres_data})")
    else:
        metrics = f"http://127.0.0.1:{record.http_port}/metrics"
        say(f"  {name:<13} ready after {seconds:.0f} s, metrics {metrics}")


def _say_failed(name: str, record: ServiceRecord, base: Path) -> int:
    say(f"error: {name} failed ({record.last_exit}) after {record.restarts} restart(s).")
    for path in log_files(base)[name]:
        if path.exists():
            tail = path.read_text(errors="replace").splitlines()[-15:]
            say(f"--- {path.name}\n" + "\n".join(tail))
    say(f"The rest keeps running; `revo logs {name}` shows its log, `revo up` tries it again.")
    return 1


def _print_ready(state: PlatformState, seconds: float) -> None:
    say(f"\nrevo is up in {seconds:.1f} s.\n")
    say(f"  NATS       {state.nats_url}   (monitoring http://127.0.0.1:{state.nats_monitor_port})")
    say(f"             credentials required; the operator's: {operator_creds_file()}")
    say(f"  Postgres   {state.postgres_dsn}")
    gateway = state.services.get("chat-gateway")
    if gateway is not None:
        say(f"  Chat       http://127.0.0.1:{gateway.http_port}/   (web page: sign in with a key)")
        say(f"  API        http://127.0.0.1:{gateway.http_port}/v1   (OpenAI-compatible)")
    say("\nTry:")
    say('  revo ask "Why would a Python import fail only in CI?"')
    say('  revo run assistant "What makes a good commit message?"')
    say("  revo runs            # runs so far, with status and tokens")
    say("  revo keys create --tenant default   # an API key for the web page and the API")
    say("  revo cost            # spend by model and provider, local share, savings")
    say('  revo memory add "CI runs pytest on 4 workers"   # something agents should know')
    say('  revo memory search "how is CI run"              # recall it')
    say("  revo status          # every process: up, restarting or failed, and restarts")
    say("  revo logs agent-runner -f   # a service's log, followed")
    say("  revo down            # stop everything")
    say(f"  logs: {state_dir() / 'logs'}")


# -- revo down -------------------------------------------------------------------------------


def down() -> int:
    state = load_state()
    if state is None:
        say("revo is not running (no .revo/state.json here).")
        return 0
    _stop_supervisor(state)  # first, so that nothing restarts what is being stopped
    state = load_state() or state
    for name, record in reversed(list(state.services.items())):
        _stop_pid(record.pid, name, timeout=30)
    postgres(state).stop()
    say("  postgres stopped")
    _stop_pid(state.nats.pid, "nats-server", timeout=10)
    clear_state()
    say("revo is down.")
    return 0


def _stop_supervisor(state: PlatformState) -> None:
    """SIGTERM the supervisor alone: it exits and leaves every process it watches running."""
    pid = state.supervisor_pid
    if not pid_alive(pid):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    end = time.monotonic() + SUPERVISOR_STOP_TIMEOUT_S
    while pid_alive(pid) and time.monotonic() < end:
        _reap(pid)
        time.sleep(0.1)
    if pid_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _stop_pid(pid: int, name: str, timeout: float) -> None:
    """SIGTERM the process group (a service drains first), SIGKILL if it lingers."""
    if not pid_alive(pid):
        return
    _signal_group(pid, signal.SIGTERM)
    end = time.monotonic() + timeout
    while pid_alive(pid) and time.monotonic() < end:
        _reap(pid)
        time.sleep(0.1)
    if pid_alive(pid):
        _signal_group(pid, signal.SIGKILL)
    say(f"  {name} stopped")


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        os.kill(pid, sig)


def _reap(pid: int) -> None:
    # A child of this very process (up then down in one run) must be reaped to vanish.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


if __name__ == "__main__":
    sys.exit(up())
