"""pytest plugin with the real components every revo test stands on.

Session-scoped: one nats-server (JetStream, temp store, free port), one Postgres 16 with
pgvector, one OTLP receiver, and the inference service as its own process with the real
vLLM engine and the embedded model, loaded once. Registered by the root conftest.py.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from revo_core.bus import Bus
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


@pytest.fixture(scope="session")
def nats_server(revo_tmp: Path) -> Iterator[NatsServer]:
    server = NatsServer(revo_tmp / "nats").start()
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


def inference_env(nats_url: str, http_port: int, otlp_endpoint: str | None) -> dict[str, str]:
    env = {
        "NATS_URL": nats_url,
        "REVO_INFERENCE_HTTP_PORT": str(http_port),
        "REVO_INFERENCE_LOG_JSON": "true",
        # Tests check that a vanished caller frees the engine; don't make them wait long.
        "REVO_INFERENCE_PING_INTERVAL_S": "0.5",
        "OTEL_SERVICE_NAME": "inference",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }
    if otlp_endpoint:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = otlp_endpoint
    if "REVO_HOME" in os.environ:
        env["REVO_HOME"] = os.environ["REVO_HOME"]
    return env


@pytest.fixture
async def bus(nats_server: NatsServer) -> AsyncIterator[Bus]:
    connection = await Bus.connect(nats_server.url, name="pytest")
    yield connection
    await connection.close()
