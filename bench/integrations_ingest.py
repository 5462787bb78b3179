"""Webhook ingest of the integrations service, beside a bare aiohttp handler in the same run.

One nats-server and one Postgres in a scratch directory, the integrations service as its own
process as in production (tracing on, no exporter, JSON logs at WARNING). One tenant with a
GitHub integration (configured in Postgres through ConfigStore, as the service reads it).
Every webhook is a `check_run` completed with conclusion failure from another CI's app
(not GitHub Actions), signed with the tenant's secret and a delivery id of its own: the
whole synchronous path, no log to fetch (that one's output is the log, kept inline):
size check, tenant's integration (cached), body read, X-Hub-Signature-256 verified, payload
decoded, the delivery recorded in Postgres (dedupe), the CiEvent published to CI_EVENTS
with Nats-Msg-Id and its ack awaited, the delivery marked published, 202.
Exactly once is checked, not assumed: CI_EVENTS must hold one message per webhook sent.

The baseline: an aiohttp app in its own process whose handler reads the body and answers
202, driven by the same client with the same bodies.
- Throughput: `--webhooks` sent by `--concurrency` connections back to back (closed loop).
- Latency: `--rate` webhooks/s offered for `--seconds` (open loop: each on its own schedule,
  latency counted from when it was due), p50/p99.
The client runs in this process, on the same cores as the service: on a 2-core machine it
takes a share of them, in both runs alike.
Targets: >= 2,000 webhooks/s on 2 cores; p99 <= 20 ms at 500/s offered.

    python bench/integrations_ingest.py [--webhooks 20000] [--concurrency 32]
                                        [--rate 500] [--seconds 10] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
import asyncpg
import psutil  # comes with pgserver (embedded Postgres)
from aiohttp import web
from machine import machine_line
from runs import CpuClock, postgres_processes

from revo_contracts import subjects
from revo_contracts.integrations import CiPolicy, GithubIntegration
from revo_contracts.streams import CI_EVENTS
from revo_core.bus import Bus
from revo_core.embedded.nats_server import NatsServer
from revo_core.embedded.ports import free_port
from revo_core.embedded.postgres import Postgres
from revo_core.embedded.service_process import ServiceProcess
from revo_core.testing.fixtures import integrations_env
from revo_integrations.ci_policy import PolicyStore
from revo_integrations.config_store import ConfigStore
from revo_integrations.secret_box import SecretBox, new_key

TARGET_PER_S = 2_000
TARGET_P99_S = 0.020
TENANT = "bench-hooks"
SECRET = "bench-webhook-secret"


# -- the world -------------------------------------------------------------------------------


class World:
    def __init__(self) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="revo-bench-hooks-"))
        self.base.chmod(0o755)  # Postgres runs as another user when we are root
        self.key = new_key()
        self.nats: NatsServer | None = None
        self.postgres: Postgres | None = None
        self.service: ServiceProcess | None = None
        self.baseline: subprocess.Popen[bytes] | None = None
        self.baseline_port = free_port()

    def start(self) -> World:
        self.nats = NatsServer(self.base / "nats").start()
        self.postgres = Postgres(self.base / "pg", free_port()).start()
        port = free_port()
        env = integrations_env(self.nats.url, self.postgres.dsn, port)
        env.update(REVO_INTEGRATIONS_SECRET_KEYS=self.key, REVO_INTEGRATIONS_LOG_LEVEL="WARNING")
        self.service = ServiceProcess("revo_integrations", port, env, self.base / "svc.log")
        self.service.start().wait_ready(60)
        self.baseline = subprocess.Popen(
            [sys.executable, __file__, "--baseline-server", str(self.baseline_port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_listening(self.baseline_port)
        return self

    def processes(self) -> dict[str, list[psutil.Process]]:
        assert self.nats is not None and self.service is not None
        assert self.service.process is not None and self.baseline is not None
        return {
            "nats-server": [psutil.Process(self.nats.process.pid)],
            "postgres": postgres_processes(self.postgres),
            "integrations": [psutil.Process(self.service.process.pid)],
            "baseline": [psutil.Process(self.baseline.pid)],
            "bench client": [psutil.Process()],
        }

    def stop(self) -> None:
        if self.baseline is not None:
            self.baseline.terminate()
            self.baseline.wait(10)
        for part in (self.service, self.postgres, self.nats):
            if part is not None:
                part.stop()
        shutil.rmtree(self.base, ignore_errors=True)


def _wait_listening(port: int, timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"the baseline server did not listen on {port}")


def serve_baseline(port: int) -> None:
    """The bare handler: read the body, answer 202."""

    async def handler(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=202)

    app = web.Application(client_max_size=25 * 1024 * 1024)
    app.router.add_post("/hooks/github/{tenant}", handler)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


# -- the webhooks ------------------------------------------------------------------------------


def webhook(n: int) -> tuple[bytes, dict[str, str]]:
    """A signed check_run failure of another CI, ~1.5 kB as GitHub sends (fields trimmed)."""
    body = json.dumps(
        {
            "action": "completed",
            "repository": {
                "id": 1296269,
                "full_name": "acme/shop",
                "html_url": "https://github.com/acme/shop",
                "owner": {"login": "acme", "id": 1, "type": "Organization"},
            },
            "check_run": {
                "id": 100_000 + n,
                "name": f"build {n % 7}",
                "head_sha": hashlib.sha1(str(n).encode()).hexdigest(),
                "status": "completed",
                "conclusion": "failure",
                "html_url": f"https://github.com/acme/shop/runs/{100_000 + n}",
                "details_url": f"https://ci.example/build/{n}",
                "started_at": "2026-11-30T09:00:00Z",
                "completed_at": "2026-11-30T09:01:00Z",
                "output": {"title": "2 tests failed", "summary": "test_cart " * 40},
                "check_suite": {"id": 5, "head_branch": "main"},
                "app": {"id": 3, "slug": "circleci", "name": "CircleCI"},
                "pull_requests": [],
            },
            "sender": {"login": "octocat", "id": 2},
        }
    ).encode()
    signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    headers = {
        "X-GitHub-Event": "check_run",
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "X-Hub-Signature-256": signature,
        "Content-Type": "application/json",
    }
    return body, headers


async def closed_loop(url: str, hooks: list, concurrency: int) -> tuple[float, int]:
    """(webhooks/s, how many were not answered 202) sending back to back."""
    queue = iter(hooks)
    failures = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def sender() -> None:
            nonlocal failures
            for body, headers in queue:
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    failures += response.status != 202

        started = time.perf_counter()
        await asyncio.gather(*(sender() for _ in range(concurrency)))
        return len(hooks) / (time.perf_counter() - started), failures


async def open_loop(url: str, hooks: list, rate: float) -> tuple[list[float], int]:
    """Latencies (from when each webhook was due) at `rate` offered, and the failures."""
    latencies: list[float] = []
    failures = 0
    connector = aiohttp.TCPConnector(limit=256)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def send(due: float, body: bytes, headers: dict[str, str]) -> None:
            nonlocal failures
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                failures += response.status != 202
            latencies.append(time.perf_counter() - due)

        start = time.perf_counter() + 0.2
        await asyncio.gather(
            *(send(start + i / rate, body, headers) for i, (body, headers) in enumerate(hooks))
        )
    return latencies, failures


async def configure(world: World) -> None:
    assert world.postgres is not None
    pool = await asyncpg.create_pool(world.postgres.dsn, min_size=1, max_size=2)
    integration = GithubIntegration(webhook_secret=SECRET, token="unused", api_url="http://x")
    await ConfigStore(pool, SecretBox(world.key)).put(TENANT, integration)
    # The CI trigger in the same process reads every event and its tenant's policy; here the
    # policy starts no run (the bench measures ingest, and no agent-runner owns RUNS here).
    await PolicyStore(pool).put(TENANT, CiPolicy(enabled=False))
    await pool.close()


async def stored_events(world: World) -> int:
    assert world.nats is not None
    bus = await Bus.connect(world.nats.url, name="bench-hooks")
    subject = subjects.ci_events(TENANT, "github")
    info = await bus.js.stream_info(CI_EVENTS.name, subjects_filter=subject)
    await bus.close()
    return (info.state.subjects or {}).get(subject, 0)


async def bench(world: World, args: argparse.Namespace) -> dict:
    assert world.service is not None
    await configure(world)
    service_url = f"http://127.0.0.1:{world.service.http_port}/hooks/github/{TENANT}"
    baseline_url = f"http://127.0.0.1:{world.baseline_port}/hooks/github/{TENANT}"
    await closed_loop(service_url, [webhook(n) for n in range(500)], 8)  # warm up
    await closed_loop(baseline_url, [webhook(n) for n in range(500)], 8)
    results: dict = {"sent": 500}
    for name, url in (("baseline", baseline_url), ("service", service_url)):
        hooks = [webhook(n) for n in range(args.webhooks)]
        clock = CpuClock(world)  # type: ignore[arg-type]
        rate, failed = await closed_loop(url, hooks, args.concurrency)
        cpu, others, steal = clock.read()
        offered = [webhook(n) for n in range(int(args.rate * args.seconds))]
        latencies, late_failed = await open_loop(url, offered, args.rate)
        results[name] = {
            "rate": rate,
            "failed": failed + late_failed,
            "cpu": cpu,
            "others": others,
            "steal": steal,
            "p50": statistics.median(latencies),
            "p99": statistics.quantiles(latencies, n=100)[98],
        }
        if name == "service":
            results["sent"] += len(hooks) + len(offered)
    results["stored"] = await stored_events(world)
    return results


def report(results: dict, args: argparse.Namespace) -> bool:
    service, baseline = results["service"], results["baseline"]
    print(machine_line())
    print(
        f"Webhook ingest: check_run failures (signed, no log to fetch), {args.webhooks:,} back "
        f"to back over {args.concurrency} connections, then {args.rate:.0f}/s offered for "
        f"{args.seconds:.0f} s"
    )
    print(f"  {'':28} {'webhooks/s':>11} {'p50 ms':>8} {'p99 ms':>8} {'not 202':>8}")
    for name, figures in (("integrations service", service), ("bare aiohttp baseline", baseline)):
        print(
            f"  {name:28} {figures['rate']:11,.0f} {figures['p50'] * 1e3:8.2f} "
            f"{figures['p99'] * 1e3:8.2f} {figures['failed']:8d}"
        )
    print(
        f"  ratio service / baseline:    throughput {service['rate'] / baseline['rate']:.2f}x, "
        f"p99 {service['p99'] / baseline['p99']:.1f}x"
    )
    cpu = ", ".join(f"{name} {s:.1f} s" for name, s in service["cpu"].items() if s >= 0.05)
    print(f"  CPU during the service's closed loop: {cpu}; others {service['others']:.1f} s")
    # CPU per webhook depends less on what else the machine runs than webhooks/s does.
    per = {
        name: seconds / args.webhooks * 1e3
        for name, seconds in service["cpu"].items()
        if name in ("integrations", "postgres", "nats-server")
    }
    server_side = sum(per.values())
    base = baseline["cpu"].get("baseline", 0.0) / args.webhooks * 1e3
    print(
        "  CPU per webhook: "
        + ", ".join(f"{name} {ms:.3f} ms" for name, ms in per.items())
        + f" (sum {server_side:.3f} ms: {2000 / server_side if server_side else 0:,.0f}/s on 2 "
        f"cores with no client); bare baseline {base:.3f} ms"
    )
    exact = results["stored"] == results["sent"]
    print(
        f"  CI_EVENTS holds {results['stored']:,} events for {results['sent']:,} webhooks "
        f"accepted: {'exactly once' if exact else 'MISMATCH'}"
    )
    ok_rate = service["rate"] >= TARGET_PER_S
    ok_p99 = service["p99"] <= TARGET_P99_S
    print(
        f"  targets: >= {TARGET_PER_S:,}/s {'met' if ok_rate else 'MISSED'}; "
        f"p99 <= {TARGET_P99_S * 1e3:.0f} ms at {args.rate:.0f}/s {'met' if ok_p99 else 'MISSED'}"
    )
    return exact and service["failed"] == 0


def main(args: argparse.Namespace) -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    world = World()
    try:
        world.start()
        results = asyncio.run(bench(world, args))
        return 0 if report(results, args) else 1
    except Exception:
        if world.service is not None:
            print(world.service.log_tail())
        raise
    finally:
        world.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--webhooks", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rate", type=float, default=500, help="webhooks/s offered")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--quick", action="store_true", help="5,000 webhooks, 5 s offered")
    parser.add_argument("--baseline-server", type=int, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.baseline_server:
        serve_baseline(arguments.baseline_server)
        sys.exit(0)
    if arguments.quick:
        arguments.webhooks, arguments.seconds = 5_000, 5
    sys.exit(main(arguments))
