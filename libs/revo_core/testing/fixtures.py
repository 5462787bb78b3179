"""pytest plugin with the real components every revo test stands on.

Session-scoped: one nats-server (JetStream, temp store, free port), one Postgres 16 with
pgvector, one OTLP receiver, and the inference service as its own process with the real
vLLM engine and the embedded model, loaded once. Registered by the root conftest.py.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from revo_contracts.bus_identities import OPERATOR
from revo_core.bus import Bus
from revo_core.bus_authority import BusAuthority
from revo_core.embedded.nats_server import NatsServer
from revo_core.embedded.ports import free_port
from revo_core.embedded.postgres import Postgres
from revo_core.embedded.service_process import ServiceProcess
from revo_core.testing.otlp_receiver import OtlpReceiver
from revo_core.tracing import setup_tracing

# Loading the model takes ~20-40 s on 2 cores; leave room for a busy CI machine.
INFERENCE_READY_TIMEOUT_S = 300


@pytest.fixture(scope="session", autouse=True)
def _test_tracing() -> None:
    """A real tracer provider in the test process, so test spans have trace ids."""
    setup_tracing("pytest")


@pytest.fixture(scope="session")
def revo_tmp() -> Iterator[Path]:
    # Not pytest's tmp_path: Postgres runs as another user when we are root, and it must
    # be able to reach its data directory (tmp_path's parents are private to root).
    base = Path(tempfile.mkdtemp(prefix="revo-test-"))
    base.chmod(0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


# The session's NATS authority: every nats-server a test starts trusts it, and every service
# a test starts connects with its own credentials from it (service_env), so the tests run
# under the permissions the platform runs under.
_authority: BusAuthority | None = None
# The servers started by nats_server_of: at the end of the session none of their logs may
# show a permission violation (a service whose real traffic left its allow-lists).
_checked_servers: list[NatsServer] = []


@pytest.fixture(scope="session")
def bus_authority(revo_tmp: Path) -> Iterator[BusAuthority]:
    global _authority
    _authority = BusAuthority.load_or_create(revo_tmp / "nats-auth")
    # The `revo` CLI the tests run speaks as the operator, as on an operator's machine.
    os.environ["NATS_CREDS"] = str(_authority.creds_file(OPERATOR))
    yield _authority
    violations = [line for server in _checked_servers for line in permission_violations(server)]
    assert not violations, "services went outside their NATS permissions:\n" + "\n".join(
        violations[:20]
    )


def permission_violations(server: NatsServer) -> list[str]:
    if not server.log_file.exists():
        return []
    return [line for line in server.log_file.read_text().splitlines() if "Violation" in line]


def nats_server_of(store_dir: Path, authority: BusAuthority) -> NatsServer:
    """A started nats-server that requires credentials of `authority`; the tests' own
    traffic on it is checked for permission violations at the end of the session (attacks
    belong on a server of their own)."""
    server = NatsServer(store_dir, authority=authority).start()
    _checked_servers.append(server)
    return server


async def operator_bus(server: NatsServer, name: str = "pytest") -> Bus:
    """A connection as the operator (every subject allowed): tests play clients and fakes."""
    return await Bus.connect(server.url, name=name, credentials=server.creds())


@pytest.fixture(scope="session")
def nats_server(revo_tmp: Path, bus_authority: BusAuthority) -> Iterator[NatsServer]:
    server = nats_server_of(revo_tmp / "nats", bus_authority)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres(revo_tmp: Path) -> Iterator[Postgres]:
    server = Postgres(revo_tmp / "pg", free_port()).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def otlp_receiver() -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture(scope="session")
def inference_service(
    nats_server: NatsServer, otlp_receiver: OtlpReceiver, revo_tmp: Path
) -> Iterator[ServiceProcess]:
    port = free_port()
    service = ServiceProcess(
        "revo_inference",
        http_port=port,
        env=inference_env(nats_server.url, port, otlp_receiver.endpoint),
        log_file=revo_tmp / "logs" / "inference.log",
    )
    service.start()
    try:
        service.wait_ready(INFERENCE_READY_TIMEOUT_S)
    except Exception:
        service.stop(timeout=5)
        raise
    yield service
    service.stop()


def service_env(
    service: str,
    nats_url: str,
    http_port: int,
    otlp_endpoint: str | None = None,
    database_url: str | None = None,
    **settings: object,
) -> dict[str, str]:
    """The environment tests start a service with: its NATS and HTTP port, JSON logs, traces
    to the test's OTLP receiver flushed every 100 ms, and `settings` as REVO_<SERVICE>_<NAME>
    (`cost-ledger`'s `ack_wait_s` is REVO_COST_LEDGER_ACK_WAIT_S)."""
    prefix = f"REVO_{service.upper().replace('-', '_')}_"
    own = {"http_port": http_port, "log_json": "true", **settings}
    if database_url is not None:
        own["database_url"] = database_url
    env = {"NATS_URL": nats_url, "OTEL_SERVICE_NAME": service, "OTEL_BSP_SCHEDULE_DELAY": "100"}
    if _authority is not None:
        env["NATS_CREDS"] = str(_authority.creds_file(service))
    env.update({prefix + name.upper(): str(value) for name, value in own.items()})
    if otlp_endpoint:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = otlp_endpoint
    return env


def inference_env(nats_url: str, http_port: int, otlp_endpoint: str | None) -> dict[str, str]:
    # Tests check that a vanished caller frees the engine; don't make them wait long.
    env = service_env("inference", nats_url, http_port, otlp_endpoint, ping_interval_s=0.5)
    if "REVO_HOME" in os.environ:
        env["REVO_HOME"] = os.environ["REVO_HOME"]
    return env


@pytest.fixture
async def bus(nats_server: NatsServer) -> AsyncIterator[Bus]:
    connection = await operator_bus(nats_server)
    yield connection
    await connection.close()


# -- the agent-runner, over a scripted model -------------------------------------------------
# A second nats-server, so the scripted responder on `inference.chat` never shares a queue
# group with the real inference service of the session.

TEST_AGENTS_YAML = """
  scripted:
    description: Test agent whose model is the test's script; has every tool.
    prompt: You are a test agent.
    tools: [list_files, read_file, write_file, search_code, run_linter, detect_languages,
            ask_user, final_answer]
  chatty:
    description: Test agent without tools.
    prompt: You are a test agent that chats.
  hasty:
    description: Test agent that must answer after one step.
    prompt: You are a test agent in a hurry.
    tools: [list_files, final_answer]
    answer_after: 1
"""


def write_test_agents_file(path: Path) -> Path:
    """The service's own agents plus two test agents, so tests see the real definitions."""
    from revo_agent_runner.settings import DEFAULT_AGENTS_FILE

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(DEFAULT_AGENTS_FILE.read_text() + TEST_AGENTS_YAML)
    return path


def runner_env(
    nats_url: str,
    database_url: str,
    http_port: int,
    runner_id: str,
    workspace_root: Path,
    agents_file: Path,
    otlp_endpoint: str | None = None,
) -> dict[str, str]:
    return service_env(
        "agent-runner",
        nats_url,
        http_port,
        otlp_endpoint,
        database_url,
        runner_id=runner_id,
        workspace_root=workspace_root,
        agents_file=agents_file,
        # Tests kill runners and wait for the redelivery: keep the wait short.
        ack_wait_s=3,
        heartbeat_s=1,
        drain_grace_s=5,
    )


def launch(
    processes: list[ServiceProcess],
    module: str,
    port: int,
    env: dict,
    base: Path,
    name: str,
    ready_timeout_s: float = 60,
) -> ServiceProcess:
    """Start a service process, remember it for `stop_all`, and wait until it is ready."""
    process = ServiceProcess(module, port, env, base / "logs" / f"{name}.log").start()
    processes.append(process)
    try:
        process.wait_ready(ready_timeout_s)
    except Exception:
        process.stop(timeout=5)
        raise
    return process


def stop_all(processes: list[ServiceProcess]) -> None:
    for process in processes:
        process.stop(timeout=10)


class ServiceFactory:
    """Starts processes of one service for tests and stops whatever is left at the end.
    `env_of(nats_url, http_port)` is a process's environment before the test's overrides."""

    def __init__(
        self, module: str, base: Path, env_of: Callable[[str, int], dict[str, str]]
    ) -> None:
        self.module = module
        self.base = base
        self.env_of = env_of
        self.processes: list[ServiceProcess] = []

    def start(self, nats_url: str, name: str, **overrides: str) -> ServiceProcess:
        port = free_port()
        env = self.env_of(nats_url, port)
        env.update(overrides)
        return launch(self.processes, self.module, port, env, self.base, name)

    def stop_all(self) -> None:
        stop_all(self.processes)


class RunnerFactory:
    """Starts agent-runner processes for a test and stops whatever is left at the end."""

    def __init__(self, base: Path, database_url: str, otlp_endpoint: str | None) -> None:
        self.base = base
        self.database_url = database_url
        self.otlp_endpoint = otlp_endpoint
        self.agents_file = write_test_agents_file(base / "agents.yaml")
        self.processes: list[ServiceProcess] = []

    def start(self, nats_url: str, runner_id: str, **overrides: str) -> ServiceProcess:
        port = free_port()
        env = runner_env(
            nats_url,
            self.database_url,
            port,
            runner_id,
            self.base / "workspaces",
            self.agents_file,
            self.otlp_endpoint,
        )
        env.update(overrides)
        return launch(self.processes, "revo_agent_runner", port, env, self.base, runner_id)

    def stop_all(self) -> None:
        stop_all(self.processes)


@pytest.fixture(scope="session")
def runner_factory(
    revo_tmp: Path, postgres: Postgres, otlp_receiver: OtlpReceiver
) -> Iterator[RunnerFactory]:
    factory = RunnerFactory(revo_tmp / "agent-runner", postgres.dsn, otlp_receiver.endpoint)
    yield factory
    factory.stop_all()


@pytest.fixture(scope="session")
def scripted_nats(revo_tmp: Path, bus_authority: BusAuthority) -> Iterator[NatsServer]:
    server = nats_server_of(revo_tmp / "nats-scripted", bus_authority)
    yield server
    server.stop()


@pytest.fixture(scope="session")
async def scripted_model(scripted_nats: NatsServer) -> AsyncIterator[Any]:
    from revo_core.testing.scripted_model import ScriptedModel

    connection = await operator_bus(scripted_nats, "scripted-model")
    model = await ScriptedModel(connection).start()
    yield model
    await model.stop()
    await connection.close()


@pytest.fixture(scope="session")
def scripted_runner(
    scripted_nats: NatsServer, scripted_model: Any, runner_factory: RunnerFactory
) -> ServiceProcess:
    """One agent-runner on the scripted world, shared by the loop tests."""
    return runner_factory.start(scripted_nats.url, "runner-scripted")


@pytest.fixture
async def scripted_bus(scripted_nats: NatsServer) -> AsyncIterator[Bus]:
    connection = await operator_bus(scripted_nats, "pytest-scripted")
    yield connection
    await connection.close()


# -- the chat gateway ------------------------------------------------------------------------

GATEWAY_JWT_SECRET = "test-secret-of-the-gateway-0123456789"


def gateway_env(
    nats_url: str, database_url: str, http_port: int, otlp_endpoint: str | None = None
) -> dict[str, str]:
    return service_env(
        "chat-gateway",
        nats_url,
        http_port,
        otlp_endpoint,
        database_url,
        jwt_secret=GATEWAY_JWT_SECRET,
        drain_grace_s=5,
    )


@pytest.fixture(scope="session")
def gateway_factory(
    revo_tmp: Path, postgres: Postgres, otlp_receiver: OtlpReceiver
) -> Iterator[ServiceFactory]:
    factory = ServiceFactory(
        "revo_chat_gateway",
        revo_tmp / "chat-gateway",
        lambda nats_url, port: gateway_env(nats_url, postgres.dsn, port, otlp_receiver.endpoint),
    )
    yield factory
    factory.stop_all()


@pytest.fixture(scope="session")
def scripted_gateway(
    scripted_nats: NatsServer, scripted_runner: ServiceProcess, gateway_factory: ServiceFactory
) -> ServiceProcess:
    """A chat gateway on the scripted world (agent-runner + scripted model)."""
    return gateway_factory.start(scripted_nats.url, "gateway-scripted")


async def create_api_key(bus: Bus, tenant: str, role: str = "member") -> str:
    """A new API key, made the way an operator makes one (`gateway.keys.create` on NATS)."""
    from revo_contracts import subjects
    from revo_contracts.gateway import KeyCreateRequest, KeyCreateResponse

    created = await bus.request(
        subjects.GATEWAY_KEYS_CREATE,
        KeyCreateRequest(tenant=tenant, role=role),  # type: ignore[arg-type]
        KeyCreateResponse,
    )
    return created.key


# -- the cost ledger -------------------------------------------------------------------------


def ledger_env(
    nats_url: str, database_url: str, http_port: int, otlp_endpoint: str | None = None
) -> dict[str, str]:
    return service_env(
        "cost-ledger",
        nats_url,
        http_port,
        otlp_endpoint,
        database_url,
        # Tests kill ledgers and wait for the redelivery: keep the wait short.
        ack_wait_s=2,
        prices_check_s=0.2,
        drain_grace_s=5,
    )


@pytest.fixture(scope="session")
def ledger_factory(
    revo_tmp: Path, postgres: Postgres, otlp_receiver: OtlpReceiver
) -> Iterator[ServiceFactory]:
    factory = ServiceFactory(
        "revo_cost_ledger",
        revo_tmp / "cost-ledger",
        lambda nats_url, port: ledger_env(nats_url, postgres.dsn, port, otlp_receiver.endpoint),
    )
    yield factory
    factory.stop_all()


# -- the memory service ----------------------------------------------------------------------

# An inference service with only the embedding model: starts in seconds (no vLLM engine).
EMBED_ONLY_MODELS_YAML = """
models:
  - name: all-minilm-l6-v2
    kind: embed
    path: embedded
    aliases: [auto, default]
    max_context: 256
"""


def embed_only_inference(
    nats_url: str, base: Path, otlp_endpoint: str | None = None, **overrides: str
) -> ServiceProcess:
    """Start (and wait for) an inference service that serves only `inference.embed`."""
    models_file = base / "embed-only-models.yaml"
    models_file.parent.mkdir(parents=True, exist_ok=True)
    models_file.write_text(EMBED_ONLY_MODELS_YAML)
    port = free_port()
    env = inference_env(nats_url, port, otlp_endpoint)
    env["REVO_INFERENCE_MODELS_FILE"] = str(models_file)
    env.update(overrides)
    return launch([], "revo_inference", port, env, base, f"inference-embed-{port}", 120)


def memory_env(
    nats_url: str, database_url: str, http_port: int, otlp_endpoint: str | None = None
) -> dict[str, str]:
    return service_env("memory", nats_url, http_port, otlp_endpoint, database_url, drain_grace_s=5)


@pytest.fixture(scope="session")
def memory_factory(
    revo_tmp: Path, postgres: Postgres, otlp_receiver: OtlpReceiver
) -> Iterator[ServiceFactory]:
    factory = ServiceFactory(
        "revo_memory",
        revo_tmp / "memory",
        lambda nats_url, port: memory_env(nats_url, postgres.dsn, port, otlp_receiver.endpoint),
    )
    yield factory
    factory.stop_all()


# -- the integrations service ----------------------------------------------------------------

# A fixed Fernet key (urlsafe base64 of 32 bytes): tests read rows sealed by earlier processes.
INTEGRATIONS_SECRET_KEY = "dGVzdC1rZXktb2YtcmV2by1pbnRlZ3JhdGlvbnMtMDE="


def integrations_env(
    nats_url: str, database_url: str, http_port: int, otlp_endpoint: str | None = None
) -> dict[str, str]:
    return service_env(
        "integrations",
        nats_url,
        http_port,
        otlp_endpoint,
        database_url,
        secret_keys=INTEGRATIONS_SECRET_KEY,
        drain_grace_s=5,
    )


@pytest.fixture(scope="session")
def integrations_factory(
    revo_tmp: Path, postgres: Postgres, otlp_receiver: OtlpReceiver
) -> Iterator[ServiceFactory]:
    factory = ServiceFactory(
        "revo_integrations",
        revo_tmp / "integrations",
        lambda nats_url, port: integrations_env(
            nats_url, postgres.dsn, port, otlp_receiver.endpoint
        ),
    )
    yield factory
    factory.stop_all()
