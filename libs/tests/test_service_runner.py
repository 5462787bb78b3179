"""The service runner: SIGTERM drains in-flight work, logs are JSON with context."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from drain_service import Count, Number

from revo_core.embedded.ports import free_port
from revo_core.embedded.service_process import ServiceProcess
from revo_core.errors import BusUnavailable, UpstreamError
from revo_core.streaming import stream_request


def start_drain_service(nats_url: str, log_file: Path, creds: Path) -> ServiceProcess:
    """The test service serves a subject no service identity has: it speaks as the operator."""
    port = free_port()
    service = ServiceProcess(
        "drain_service",
        http_port=port,
        env={
            "NATS_URL": nats_url,
            "NATS_CREDS": str(creds),
            "REVO_HTTP_PORT": str(port),
            "REVO_LOG_JSON": "true",
            "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), *sys.path]),
        },
        log_file=log_file,
    )
    service.start()
    service.wait_ready(30)
    return service


async def test_sigterm_lets_an_in_flight_stream_finish_then_exits_cleanly(
    bus, nats_server, tmp_path
):
    service = start_drain_service(nats_server.url, tmp_path / "drain.log", nats_server.creds())
    received = []
    async with stream_request(bus, "test.drain.count", Count(to=15), Number) as numbers:
        async for number in numbers:
            received.append(number.n)
            if number.n == 1:
                service.process.send_signal(signal.SIGTERM)

    assert received == list(range(15))
    assert await asyncio.to_thread(service.process.wait, 30) == 0


async def test_a_stream_whose_server_is_killed_fails_fast_and_a_restart_serves_again(
    bus, nats_server, tmp_path
):
    service = start_drain_service(nats_server.url, tmp_path / "drain.log", nats_server.creds())
    received = []
    with pytest.raises(UpstreamError, match="went silent"):
        async with stream_request(
            bus, "test.drain.count", Count(to=500), Number, silence_timeout=3
        ) as numbers:
            async for number in numbers:
                received.append(number.n)
                if number.n == 2:
                    service.kill()  # SIGKILL: no drain, no goodbye
    assert received[:3] == [0, 1, 2]

    restarted = start_drain_service(nats_server.url, tmp_path / "drain2.log", nats_server.creds())
    async with stream_request(bus, "test.drain.count", Count(to=3), Number) as numbers:
        assert [n.n async for n in numbers] == [0, 1, 2]
    restarted.stop()


async def test_after_shutdown_nobody_serves_the_subject(bus, nats_server, tmp_path):
    service = start_drain_service(nats_server.url, tmp_path / "drain.log", nats_server.creds())
    service.stop()

    try:
        async with stream_request(bus, "test.drain.count", Count(to=1), Number) as numbers:
            [n async for n in numbers]
    except BusUnavailable:
        pass
    else:
        raise AssertionError("a stopped service still answered")


def test_service_logs_are_json_lines_naming_the_service(nats_server, tmp_path):
    service = start_drain_service(nats_server.url, tmp_path / "drain.log", nats_server.creds())
    service.stop()

    # stdout is ours: every line of it must be a JSON object.
    lines = [json.loads(line) for line in service.log_file.read_text().splitlines()]
    assert lines, service.log_tail()
    assert all(line["service"] == "drain-test" for line in lines)
    assert {"connected to nats", "stopped"} <= {line["event"] for line in lines}


def test_a_service_without_nats_exits_with_a_clear_error(tmp_path):
    port = free_port()
    result = subprocess.run(
        [sys.executable, "-m", "drain_service"],
        env={
            **os.environ,
            "NATS_URL": f"nats://127.0.0.1:{free_port()}",
            "REVO_HTTP_PORT": str(port),
            "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), *sys.path]),
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "cannot reach NATS" in result.stdout + result.stderr
