"""`revo up` and `revo down`: the embedded platform on this machine.

Real nats-server (JetStream), real Postgres 16 + pgvector (data under .revo/), then each
service as its own process; every one outlives the terminal that started it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from pathlib import Path

from revo_cli.state import (
    PlatformState,
    ServiceRecord,
    clear_state,
    load_state,
    operator_creds_file,
    pid_alive,
    save_state,
    state_dir,
)
from revo_core.bus_authority import BusAuthority
from revo_core.embedded.nats_server import EmbeddedProcessError, NatsServer
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
}
READY_TIMEOUT_S = 300


def _port(preferred: int) -> int:
    return preferred if not port_open(preferred) else free_port()


def say(text: str) -> None:
    print(text, flush=True)


def up() -> int:
    existing = load_state()
    if existing and pid_alive(existing.nats_pid):
        say(f"revo is already running (NATS at {existing.nats_url}); `revo down` stops it.")
        return 1
    started = time.monotonic()
    base = state_dir()
    base.mkdir(parents=True, exist_ok=True)
    _prepare_model()
    authority = bus_authority(base)
    nats = NatsServer(
        base / "nats", port=_port(4222), monitor_port=_port(8222), authority=authority
    ).start()
    say(f"  nats-server   {nats.url}  (JetStream, store {base / 'nats'}, credentials required)")
    postgres = Postgres(base / "postgres", _port(5433)).start()
    say(f"  postgres 16   {postgres.dsn}  (pgvector, data {postgres.data_dir})")
    state = PlatformState(
        nats_url=nats.url,
        nats_pid=nats.process.pid,
        nats_monitor_port=nats.monitor_port or 0,
        postgres_dsn=postgres.dsn,
        postgres_data=str(postgres.data_dir),
    )
    save_state(state)
    try:
        _start_services(state, base)
    except EmbeddedProcessError as exc:
        say(f"error: {exc}")
        down()
        return 1
    _print_ready(state, time.monotonic() - started)
    return 0


def _prepare_model() -> None:
    from revo_inference.prepare_model import is_prepared, prepare

    if not is_prepared():
        say("preparing the embedded model (SmolLM2-135M-Instruct, once, ~40 s)...")
    prepare()


def _start_services(state: PlatformState, base: Path) -> None:
    processes: dict[str, ServiceProcess] = {}
    for name, (module, port_env, default_port) in SERVICES.items():
        port = _port(default_port)
        env = {"NATS_URL": state.nats_url, port_env: str(port), "OTEL_SERVICE_NAME": name}
        env.update(_own_env(name, state, base))
        process = ServiceProcess(module, port, env, base / "logs" / f"{name}.log").start()
        processes[name] = process
        state.services[name] = ServiceRecord(
            pid=process.process.pid, http_port=port, log_file=str(process.log_file)
        )
        save_state(state)
    say(f"  waiting for {', '.join(processes)} (loading the model takes ~30 s)...")
    for name, process in processes.items():
        seconds = process.wait_ready(READY_TIMEOUT_S)
        say(
            f"  {name:<13} ready after {seconds:.0f} s, metrics http://127.0.0.1:{process.http_port}/metrics"
        )


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
    return {}


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
    say("  revo status          # services answering on NATS")
    say("  revo down            # stop everything")
    say(f"  logs: {state_dir() / 'logs'}")


def down() -> int:
    state = load_state()
    if state is None:
        say("revo is not running (no .revo/state.json here).")
        return 0
    for name, record in reversed(list(state.services.items())):
        _stop_pid(record.pid, name, timeout=30)
    Postgres(Path(state.postgres_data), 0).stop()
    say("  postgres stopped")
    _stop_pid(state.nats_pid, "nats-server", timeout=10)
    clear_state()
    say("revo is down.")
    return 0


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
