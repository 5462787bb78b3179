"""Notifications out: delivery rate to a local HTTP sink, and what a sink failing 30% of
calls at random costs, beside a same-run baseline of bare HTTP posts to the sink.

One nats-server and one Postgres in a scratch directory; the integrations service as its
own process as in production (tracing on, no exporter); `--tenants` tenants whose generic
webhook integration points at the sink, a separate process (aiohttp) that answers 200, or
500 to a random `--fail` share of calls, and notes for each webhook-id when it first took
it and how often.

  baseline    the bench posts the same signed bodies straight to the sink (aiohttp, 64 at a
              time): the HTTP ceiling of this machine, no NATS, no Postgres.
  throughput  a backlog of `--notifications` published at once; rate = notifications /
              seconds from the first publish to the last first delivery at the sink.
  latency     `--offered` notifications/s for `--latency-count`, sink healthy, then the sink
              failing `--fail` of calls: publish-to-first-delivery p50/p99 of each, the
              extra latency retries cost, and exactly-once checked at the sink: every id
              delivered (0 lost; one that failed all 8 attempts is redriven from NOTIFY_DEAD
              as an operator would, and counted), each once after dedupe by webhook-id (the
              idempotency key: the same notification never arrives under another), and how
              many times a retry reached the sink again (what the dedupe absorbed).
Target: >= 1,000 notifications/s.

    python bench/integrations_notify.py [--notifications 5000] [--tenants 20] [--offered 300]
                                        [--latency-count 2000] [--fail 0.3] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import aiohttp
import asyncpg
import msgspec
import psutil
from aiohttp import web
from machine import machine_line

from revo_contracts import subjects
from revo_contracts.integrations import Done, WebhookIntegration
from revo_contracts.notify import (
    Notification,
    NotifyDeadListRequest,
    NotifyDeadListResponse,
    NotifyRedriveRequest,
)
from revo_core.bus import Bus
from revo_core.embedded.nats_server import NatsServer
from revo_core.embedded.ports import free_port
from revo_core.embedded.postgres import Postgres
from revo_core.embedded.service_process import ServiceProcess
from revo_core.logging import configure_logging
from revo_core.testing.fixtures import INTEGRATIONS_SECRET_KEY, integrations_env
from revo_core.testing.metrics import metric_value
from revo_integrations.app import SCHEMA_FILES
from revo_integrations.config_store import ConfigStore
from revo_integrations.secret_box import SecretBox

TARGET_PER_S = 1_000
RETRIES = "revo_integrations_notify_retries_total"
SECRET = "whsec_" + "YmVuY2gtc2VjcmV0LW9mLXRoZS1zaW5rLTAxMjM0NTY3"


# -- the sink (its own process) ----------------------------------------------------------------


def run_sink(port: int) -> None:
    state = {"fail": 0.0, "first": {}, "takes": {}, "failed": 0, "calls": 0, "keys": {}, "dup": 0}
    rng = random.Random(7)

    async def hook(request: web.Request) -> web.Response:
        body = await request.json()
        state["calls"] += 1
        if rng.random() < state["fail"]:
            state["failed"] += 1
            return web.json_response({"error": "scripted"}, status=500)
        webhook_id = request.headers.get("webhook-id", "")
        state["first"].setdefault(webhook_id, time.time())
        # The same notification under another idempotency key would pass a receiver's
        # dedupe: a duplicate after dedupe.
        notification_id = body["data"]["notification_id"]
        if state["keys"].setdefault(notification_id, webhook_id) != webhook_id:
            state["dup"] += 1
        state["takes"][webhook_id] = state["takes"].get(webhook_id, 0) + 1
        return web.json_response({"ok": True})

    async def control(request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("reset"):
            state.update(first={}, takes={}, failed=0, calls=0, keys={}, dup=0)
        state["fail"] = float(body.get("fail", state["fail"]))
        return web.json_response({"ok": True})

    async def stats(_: web.Request) -> web.Response:
        return web.json_response(state)

    app = web.Application()
    app.router.add_post("/hook", hook)
    app.router.add_post("/control", control)
    app.router.add_get("/stats", stats)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


class Sink:
    def __init__(self) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--sink", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        for _ in range(100):
            try:
                self.stats()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("the sink did not start")

    def stats(self) -> dict:
        with urllib.request.urlopen(f"{self.url}/stats", timeout=10) as response:
            return json.loads(response.read())

    def control(self, **body: object) -> None:
        request = urllib.request.Request(
            f"{self.url}/control", data=json.dumps(body).encode(), method="POST"
        )
        urllib.request.urlopen(request, timeout=10).close()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


# -- the world -----------------------------------------------------------------------------------


class World:
    def __init__(self) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="revo-bench-notify-"))
        self.base.chmod(0o755)  # Postgres runs as another user when we are root
        self.nats = NatsServer(self.base / "nats").start()
        self.postgres = Postgres(self.base / "pg", free_port()).start()
        self.sink = Sink()
        self.service: ServiceProcess | None = None

    def start_service(self) -> ServiceProcess:
        port = free_port()
        env = integrations_env(self.nats.url, self.postgres.dsn, port)
        env.update(
            REVO_INTEGRATIONS_LOG_LEVEL="WARNING",
            REVO_INTEGRATIONS_NOTIFY_BACKOFF_BASE_S="0.05",
            REVO_INTEGRATIONS_NOTIFY_BACKOFF_MAX_S="0.5",
            REVO_INTEGRATIONS_NOTIFY_CONCURRENCY="128",
        )
        self.service = ServiceProcess("revo_integrations", port, env, self.base / "svc.log")
        self.service.start().wait_ready(60)
        return self.service

    def stop(self) -> None:
        if self.service is not None:
            self.service.stop(timeout=10)
        self.sink.stop()
        self.postgres.stop()
        self.nats.stop()
        shutil.rmtree(self.base, ignore_errors=True)


async def configure(world: World, tenants: list[str]) -> None:
    pool = await asyncpg.create_pool(world.postgres.dsn, min_size=1, max_size=2)
    try:
        for schema in SCHEMA_FILES:  # the service applies them too; idempotent
            await pool.execute(schema.read_text())
        store = ConfigStore(pool, SecretBox(INTEGRATIONS_SECRET_KEY))
        for tenant in tenants:
            await store.put(tenant, WebhookIntegration(url=f"{world.sink.url}/hook", secret=SECRET))
    finally:
        await pool.close()


def notification(tenant: str) -> Notification:
    return Notification(
        notification_id=f"b-{uuid.uuid4().hex}",
        tenant=tenant,
        channel="webhook",
        title="CI failed: tests/test_checkout.py::test_pay",
        root_cause="PaymentClient.charge returns None when the mock is not primed",
        failing_test="tests/test_checkout.py::test_pay",
        signature="acme/shop|ci|tests|abc123",
        created_at=time.time(),
    )


# -- phases --------------------------------------------------------------------------------------


async def baseline(sink: Sink, count: int) -> float:
    """Bare signed-size POSTs to the sink, 64 at a time: posts/s."""
    body = msgspec.json.encode({"type": "revo.notification", "data": notification("b")})
    queue = iter(range(count))
    async with aiohttp.ClientSession() as session:

        async def worker() -> None:
            for _ in queue:
                headers = {"webhook-id": uuid.uuid4().hex, "Content-Type": "application/json"}
                async with session.post(f"{sink.url}/hook", data=body, headers=headers) as r:
                    await r.read()

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(64)))
        return count / (time.perf_counter() - started)


async def publish_all(bus: Bus, notes: list[Notification]) -> dict[str, float]:
    published: dict[str, float] = {}
    pending = []
    for note in notes:
        note.created_at = time.time()
        published[note.notification_id] = note.created_at
        pending.append(
            await bus.js_publish_nowait(
                subjects.notify("webhook", note.tenant), note, msg_id=note.notification_id
            )
        )
        if len(pending) >= 2000:
            await asyncio.gather(*pending)
            pending.clear()
    await asyncio.gather(*pending)
    return published


async def publish_at(bus: Bus, notes: list[Notification], per_s: float) -> dict[str, float]:
    published: dict[str, float] = {}
    started = time.perf_counter()
    for i, note in enumerate(notes):
        due = started + i / per_s
        if (wait := due - time.perf_counter()) > 0:
            await asyncio.sleep(wait)
        note.created_at = time.time()
        published[note.notification_id] = note.created_at
        await bus.js_publish_nowait(
            subjects.notify("webhook", note.tenant), note, msg_id=note.notification_id
        )
    return published


async def wait_delivered(
    sink: Sink, bus: Bus, ids: set[str], timeout: float, redriven: list[int] | None = None
) -> dict:
    """Until every id reached the sink. A notification that failed every attempt (0.3^8:
    about one in 15,000 at a 30% failing sink) is in NOTIFY_DEAD, not lost: it is redriven
    as an operator would (`revo notify redrive --all`), and counted."""
    end = time.monotonic() + timeout
    next_dead_check = time.monotonic() + 2.0
    while True:
        stats = await asyncio.to_thread(sink.stats)
        if ids <= set(stats["first"]) or time.monotonic() > end:
            return stats
        if redriven is not None and time.monotonic() > next_dead_check:
            next_dead_check = time.monotonic() + 2.0
            dead = await bus.request(
                subjects.INTEGRATIONS_NOTIFY_DEAD_LIST,
                NotifyDeadListRequest(limit=1000),
                NotifyDeadListResponse,
            )
            if dead.dead:
                done = await bus.request(
                    subjects.INTEGRATIONS_NOTIFY_REDRIVE, NotifyRedriveRequest(all=True), Done
                )
                redriven.append(done.count)
        await asyncio.sleep(0.25)


def exactly_once(stats: dict, published: dict[str, float]) -> dict:
    ids = set(published)
    delivered = ids & set(stats["first"])
    takes = [stats["takes"].get(i, 0) for i in ids]
    return {
        "lost": len(ids - delivered),
        "duplicates_after_dedupe": stats["dup"],
        "redelivered_to_sink": sum(t - 1 for t in takes if t > 1),
        "failed_calls": stats["failed"],
        "calls": stats["calls"],
    }


def latencies(stats: dict, published: dict[str, float]) -> tuple[float, float]:
    lat = sorted(stats["first"][i] - t for i, t in published.items() if i in stats["first"])
    p50 = statistics.median(lat)
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
    return p50 * 1e3, p99 * 1e3


def retries(service: ServiceProcess) -> dict[str, float]:
    """The service's retries so far, by reason (its /metrics)."""
    return {
        reason: metric_value(service, RETRIES, reason=reason)
        for reason in ("server_error", "network", "timeout", "rate_limited")
    }


def cpu_s(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


async def bench(world: World, args: argparse.Namespace) -> dict:
    tenants = [f"bench-{n:02d}" for n in range(args.tenants)]
    await configure(world, tenants)
    service = world.start_service()
    proc = psutil.Process(service.process.pid)
    bus = await Bus.connect(world.nats.url, "bench-notify")
    results: dict = {}
    try:
        results["baseline"] = await baseline(world.sink, args.notifications)
        world.sink.control(reset=True, fail=0.0)

        notes = [notification(tenants[i % len(tenants)]) for i in range(args.notifications)]
        cpu_before = cpu_s(proc)
        started = time.time()
        published = await publish_all(bus, notes)
        stats = await wait_delivered(world.sink, bus, set(published), 300)
        last = max(stats["first"][i] for i in published if i in stats["first"])
        results["throughput"] = len(published) / (last - started)
        results["cpu_ms_per"] = (cpu_s(proc) - cpu_before) / len(published) * 1e3
        results["throughput_check"] = exactly_once(stats, published)
        results["throughput_retries"] = retries(service)

        for phase, fail in (("healthy", 0.0), ("failing", args.fail)):
            world.sink.control(reset=True, fail=fail)
            notes = [notification(tenants[i % len(tenants)]) for i in range(args.latency_count)]
            published = await publish_at(bus, notes, args.offered)
            redriven: list[int] = []
            stats = await wait_delivered(world.sink, bus, set(published), 300, redriven)
            results[phase] = {"latency": latencies(stats, published), "redriven": sum(redriven)}
            results[phase].update(exactly_once(stats, published))
            results[phase]["service_retries"] = retries(service)
    finally:
        await bus.close()
    return results


def report(results: dict, args: argparse.Namespace) -> bool:
    print(f"\n{machine_line()}")
    print("notifications out (generic webhook channel, Standard Webhooks signed)")
    rate, base = results["throughput"], results["baseline"]
    print(f"  baseline, bare HTTP posts to the sink:  {base:8,.0f} posts/s")
    print(
        f"  delivery, backlog of {args.notifications:,}:        {rate:8,.0f} notifications/s"
        f"  ({rate / base:.2f} x baseline; service CPU {results['cpu_ms_per']:.2f} ms each)"
        f"  target >= {TARGET_PER_S:,}/s"
    )
    print(f"    {results['throughput_check']}, service retries {results['throughput_retries']}")
    healthy, failing = results["healthy"], results["failing"]
    for name, phase in (("sink healthy", healthy), (f"sink failing {args.fail:.0%}", failing)):
        p50, p99 = phase["latency"]
        print(
            f"  {name:18} at {args.offered:.0f}/s: p50 {p50:7.1f} ms  p99 {p99:7.1f} ms  "
            f"lost {phase['lost']}  duplicates after dedupe {phase['duplicates_after_dedupe']}  "
            f"failed calls {phase['failed_calls']} of {phase['calls']}  "
            f"retries that reached the sink again {phase['redelivered_to_sink']}  "
            f"dead-lettered after 8 failures and redriven {phase['redriven']}"
        )
        print(f"    service retries so far: {phase['service_retries']}")
    extra50 = failing["latency"][0] - healthy["latency"][0]
    extra99 = failing["latency"][1] - healthy["latency"][1]
    print(f"  extra latency of the failures: p50 {extra50:+.1f} ms, p99 {extra99:+.1f} ms")
    exact = all(
        phase["lost"] == 0 and phase["duplicates_after_dedupe"] == 0
        for phase in (healthy, failing, results["throughput_check"])
    )
    print(f"  exactly once after dedupe: {'yes' if exact else 'NO'}")
    return exact


def main(args: argparse.Namespace) -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    configure_logging("bench", level="WARNING", json=False)
    world = World()
    try:
        return 0 if report(asyncio.run(bench(world, args)), args) else 1
    except Exception:
        if world.service is not None:
            print(world.service.log_tail())
        raise
    finally:
        world.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--notifications", type=int, default=5_000)
    parser.add_argument("--tenants", type=int, default=20)
    parser.add_argument("--offered", type=float, default=300, help="notifications/s offered")
    parser.add_argument("--latency-count", type=int, default=2_000)
    parser.add_argument("--fail", type=float, default=0.3, help="share of sink calls failing")
    parser.add_argument("--quick", action="store_true", help="2,000 and 600 notifications")
    parser.add_argument("--sink", type=int, metavar="PORT", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.sink:
        run_sink(arguments.sink)
        sys.exit(0)
    if arguments.quick:
        arguments.notifications, arguments.latency_count = 2_000, 600
    sys.exit(main(arguments))
