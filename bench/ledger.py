"""The cost ledger: usage ingest rate and ledger.reserve latency, each beside a baseline
measured in the same run.

One nats-server and one Postgres in a scratch directory, the ledger as its own process as in
production (tracing on, no exporter; the shipped price table).

Ingest. `--events` usage events (20 tenants, local and cloud models) are published to the
USAGE stream first, plus `--duplicates` of them again under a new Nats-Msg-Id (so JetStream
stores them and only the ledger's own dedupe can drop them). Then the ledger starts and
drains the backlog; the rate is deliveries / seconds from its first recorded row to the
last delivery acked. Exactly once is checked, not assumed: the rows in Postgres must be the
distinct events, and their cost the sum the price table gives. Baselines over the same
backlog, without the ledger: consume + ack only (no Postgres), with nats-py's fetch() and
with the ledger's pipelined pulls; and a plain binary COPY of the same rows into a table
without indexes (no NATS, no dedupe).
Target: >= 20,000 events/s on 2 cores.

Reserve. `--callers` concurrent callers (closed loop), each reserving (timed), then
then releasing the hold (ledger.settle at 0, as a call that cost nothing), against one
tenant's budget: first at `--rate` reserves/s offered (open loop: each caller on its own
schedule, latency counted from when the call was due; the default 200/s is 50 paid calls in
flight that each last 250 ms, shorter than any cloud completion), then back to back (closed
loop: the most the ledger does, where latency is mostly queueing: 50 in flight / rate). The
baseline: the same callers against a trivial request/reply echo (a revo_core Endpoints
service in its own process, like the ledger). Target: p99 <= 5 ms at the offered rate.

    python bench/ledger.py [--events 100000] [--duplicates 10000] [--callers 50]
                           [--reserves 20000] [--rate 1000] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import asyncpg
import msgspec
import psutil  # comes with pgserver (embedded Postgres)
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from runs import CpuClock, postgres_processes

from revo_contracts import subjects
from revo_contracts.ledger import (
    BudgetRequest,
    BudgetStatus,
    Reservation,
    ReserveRequest,
    Settlement,
    SettleRequest,
)
from revo_contracts.streams import USAGE
from revo_contracts.usage import UsageEvent
from revo_core import headers as h
from revo_core.bus import Bus
from revo_core.embedded.nats_server import NatsServer
from revo_core.embedded.ports import free_port
from revo_core.embedded.postgres import Postgres
from revo_core.embedded.service_process import ServiceProcess
from revo_core.jetstream import ensure_streams
from revo_core.logging import configure_logging
from revo_core.testing.fixtures import ledger_env
from revo_core.tracing import setup_tracing
from revo_cost_ledger.ingest import CONSUMER
from revo_cost_ledger.prices import load_price_table
from revo_cost_ledger.puller import BatchPuller
from revo_cost_ledger.settings import DEFAULT_PRICES_FILE
from revo_cost_ledger.usage_rows import COLUMNS, RowBuilder

TARGET_EVENTS_PER_S = 20_000
TARGET_RESERVE_P99_S = 0.005
TENANTS = [f"bench-{n:02d}" for n in range(20)]
MODELS = [
    ("local", "smollm2-135m-instruct"),
    ("local", "smollm2-135m-instruct"),
    ("local", "all-minilm-l6-v2"),
    ("openai", "gpt-4o-mini"),
    ("openai", "gpt-4o"),
]
ECHO_SUBJECT = "bench.echo"


# -- the world -------------------------------------------------------------------------------


class World:
    def __init__(self) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="revo-bench-ledger-"))
        self.base.chmod(0o755)  # Postgres runs as another user when we are root
        self.nats: NatsServer | None = None
        self.postgres: Postgres | None = None
        self.ledger: ServiceProcess | None = None
        self.echo: subprocess.Popen[bytes] | None = None

    def start(self) -> World:
        self.nats = NatsServer(self.base / "nats").start()
        self.postgres = Postgres(self.base / "pg", free_port()).start()
        return self

    def start_ledger(self) -> ServiceProcess:
        assert self.nats is not None and self.postgres is not None
        port = free_port()
        env = ledger_env(self.nats.url, self.postgres.dsn, port)
        env["REVO_COST_LEDGER_LOG_LEVEL"] = "WARNING"
        self.ledger = ServiceProcess("revo_cost_ledger", port, env, self.base / "ledger.log")
        return self.ledger.start()

    def start_echo(self) -> None:
        assert self.nats is not None
        self.echo = subprocess.Popen(
            [sys.executable, __file__, "--echo-server", self.nats.url],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def processes(self) -> dict[str, list[psutil.Process]]:
        assert self.nats is not None and self.postgres is not None
        found = {"nats-server": [psutil.Process(self.nats.process.pid)]}
        found["postgres"] = postgres_processes(self.postgres)
        if self.ledger is not None and self.ledger.process is not None:
            found["cost-ledger"] = [psutil.Process(self.ledger.process.pid)]
        found["bench"] = [psutil.Process()]
        return found

    def stop(self) -> None:
        if self.echo is not None:
            self.echo.terminate()
            self.echo.wait(timeout=10)
        if self.ledger is not None:
            self.ledger.stop(timeout=10)
        if self.postgres is not None:
            self.postgres.stop()
        if self.nats is not None:
            self.nats.stop()
        shutil.rmtree(self.base, ignore_errors=True)


# -- the workload -------------------------------------------------------------------------------


def workload(events: int) -> list[UsageEvent]:
    rng = random.Random(1)
    now = time.time()
    made = []
    for i in range(events):
        provider, model = MODELS[i % len(MODELS)]
        made.append(
            UsageEvent(
                event_id=f"bench-{i:08d}-{rng.getrandbits(48):012x}",
                tenant=TENANTS[i % len(TENANTS)],
                request_id=f"req-{i:08d}",
                model=model,
                provider=provider,
                kind="embed" if model == "all-minilm-l6-v2" else "chat",
                prompt_tokens=rng.randint(10, 4000),
                completion_tokens=0 if model == "all-minilm-l6-v2" else rng.randint(1, 800),
                run_id=f"run-{i % 5000}",
                created_at=now - rng.random() * 3600,
            )
        )
    return made


async def publish(bus: Bus, events: list[UsageEvent], msg_id) -> None:
    pending = []
    for event in events:
        data = msgspec.json.encode(event)
        headers = {h.MSG_ID: msg_id(event)}
        subject = subjects.usage(event.tenant)
        pending.append(await bus.js.publish_async(subject, data, headers=headers))
        if len(pending) >= 5000:
            await asyncio.gather(*pending)
            pending.clear()
    await asyncio.gather(*pending)


def expected_cost_pico(events: list[UsageEvent]) -> int:
    table = load_price_table(DEFAULT_PRICES_FILE)
    total = 0
    for event in events:
        price = table.price(event.provider, event.model)
        total += price.cost(event.prompt_tokens, event.completion_tokens) if price else 0
    return total


# -- ingest -------------------------------------------------------------------------------------


async def baseline_fetch(bus: Bus, deliveries: int) -> float:
    """Consume + ack the whole backlog with nats-py's fetch(1000): events/s."""
    name = "bench-fetch"
    await bus.js.add_consumer(USAGE.name, _consumer(name))
    sub = await bus.js.pull_subscribe_bind(durable=name, stream=USAGE.name)
    got, started = 0, time.perf_counter()
    while got < deliveries:
        msgs = await sub.fetch(1000, timeout=5)
        for msg in msgs:
            await msg.ack()
        got += len(msgs)
    await bus.nc.flush()
    seconds = time.perf_counter() - started
    await sub.unsubscribe()
    return got / seconds


async def baseline_pipelined(bus: Bus, deliveries: int) -> float:
    """Consume + ack the whole backlog with the ledger's pipelined puller: events/s."""
    name = "bench-pipelined"
    await bus.js.add_consumer(USAGE.name, _consumer(name))
    puller = BatchPuller(bus.nc, USAGE.name, name, 1000)
    await puller.start()
    got, started = 0, time.perf_counter()
    while got < deliveries:
        msgs = await puller.next_batch(5)
        for msg in msgs:
            await msg.ack()
        got += len(msgs)
    await bus.nc.flush()
    seconds = time.perf_counter() - started
    await puller.stop()
    return got / seconds


def _consumer(name: str) -> ConsumerConfig:
    return ConsumerConfig(
        durable_name=name,
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL,
        max_ack_pending=20_000,
        filter_subject=subjects.USAGE_ALL,
    )


async def baseline_copy(dsn: str, events: list[UsageEvent]) -> float:
    """The same rows COPYed (binary) into a table without indexes, 1000 a transaction."""
    table = load_price_table(DEFAULT_PRICES_FILE)
    builder = RowBuilder(10_000_000)
    rows = [builder.build(subjects.usage(e.tenant), msgspec.json.encode(e), table) for e in events]
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "CREATE SCHEMA IF NOT EXISTS bench; DROP TABLE IF EXISTS bench.usage_copy; "
            "CREATE TABLE bench.usage_copy (LIKE ledger.usage INCLUDING DEFAULTS)"
        )
        started = time.perf_counter()
        for start in range(0, len(rows), 1000):
            async with conn.transaction():
                await conn.copy_records_to_table(
                    "usage_copy",
                    schema_name="bench",
                    records=rows[start : start + 1000],
                    columns=COLUMNS,
                )
        seconds = time.perf_counter() - started
        await conn.execute("DROP SCHEMA bench CASCADE")
    finally:
        await conn.close()
    return len(rows) / seconds


async def ledger_ingest(world: World, bus: Bus, deliveries: int, unique: int) -> dict:
    """Start the ledger on the backlog; time it from its first row to the last ack."""
    assert world.postgres is not None
    conn = await asyncpg.connect(world.postgres.dsn)
    clock = None
    try:
        world.start_ledger()
        await _poll(lambda: _table_exists(conn), 0.01)
        await _poll(lambda: _has_rows(conn), 0.002)
        started, clock = time.perf_counter(), CpuClock(world)
        while True:
            info = await bus.js.consumer_info(USAGE.name, CONSUMER)
            if info.num_pending == 0 and info.num_ack_pending == 0:
                break
            await asyncio.sleep(0.01)
        seconds = time.perf_counter() - started
        cpu, _, _ = clock.read()
        rows = await _count(conn)
        cost = await conn.fetchval("SELECT sum(cost_pico) FROM ledger.usage")
    finally:
        await conn.close()
    assert world.ledger is not None
    world.ledger.wait_ready(60)
    return {
        "seconds": seconds,
        "rate": deliveries / seconds,
        "rows": rows,
        "unique": unique,
        "cost_pico": int(cost or 0),
        "cpu": cpu,
    }


async def checkpoint(dsn: str) -> None:
    """Flush what the ingest phase wrote, so that its checkpoint does not land on the next
    phase's commits."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()


async def _poll(check, every_s: float) -> None:
    done = await check()
    while not done:
        await asyncio.sleep(every_s)
        done = await check()


async def _has_rows(conn: asyncpg.Connection) -> bool:
    return await _count(conn) > 0


async def _table_exists(conn: asyncpg.Connection) -> bool:
    return bool(await conn.fetchval("SELECT to_regclass('ledger.usage') IS NOT NULL"))


async def _count(conn: asyncpg.Connection) -> int:
    return await conn.fetchval("SELECT count(*) FROM ledger.usage")


# -- reserve --------------------------------------------------------------------------------------


async def closed_loop(callers: int, total: int, one) -> tuple[list[float], float]:
    """`callers` callers, each calling again as soon as it has its answer: the most the
    service does. Returns the latencies and calls/s."""
    latencies: list[float] = []
    left = total

    async def caller() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            started = time.perf_counter()
            await one()
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(callers)))
    return latencies, total / (time.perf_counter() - started)


async def open_loop(callers: int, rate: float, total: int, one) -> tuple[list[float], float]:
    """`callers` callers sharing `rate` calls/s between them, each on its own schedule
    (a call every callers/rate seconds). Latency counts from when a call was due, so a
    caller held up by a slow answer counts the wait too."""
    latencies: list[float] = []
    period = callers / rate
    per_caller = max(1, total // callers)
    start = time.perf_counter() + 0.05

    async def caller(index: int) -> None:
        due = start + index * period / callers
        for _ in range(per_caller):
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            await one()
            latencies.append(time.perf_counter() - due)
            due += period

    await asyncio.gather(*(caller(i) for i in range(callers)))
    return latencies, len(latencies) / (time.perf_counter() - start)


class Calls:
    """A timed call and, off the clock, a second one (a reservation's release; for the echo,
    the same request again), kept so that each phase waits for them before it ends."""

    def __init__(self, timed, untimed) -> None:
        self.timed = timed
        self.untimed = untimed
        self.background: set[asyncio.Task] = set()

    async def __call__(self) -> None:
        answer = await self.timed()
        task = asyncio.create_task(self.untimed(answer))
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def settle(self) -> None:
        await asyncio.gather(*self.background)


def reserve_calls(bus: Bus, tenant: str) -> Calls:
    async def reserve() -> Reservation:
        request = ReserveRequest(tenant=tenant, amount_micros=2_000)
        return await bus.request(subjects.LEDGER_RESERVE, request, Reservation)

    async def release(held: Reservation) -> None:
        request = SettleRequest(tenant=tenant, reservation_id=held.reservation_id, cost_micros=0)
        await bus.request(subjects.LEDGER_SETTLE, request, Settlement)

    return Calls(reserve, release)


def echo_calls(bus: Bus) -> Calls:
    async def echo(_: object = None) -> BudgetRequest:
        return await bus.request(ECHO_SUBJECT, BudgetRequest(tenant="echo"), BudgetRequest)

    return Calls(echo, echo)


async def latencies(calls: Calls, args: argparse.Namespace) -> dict:
    await closed_loop(args.callers, min(args.reserves // 10, 2_000), calls)  # warm-up
    await calls.settle()
    offered, _ = await open_loop(args.callers, args.rate, args.reserves, calls)
    await calls.settle()
    saturated, most = await closed_loop(args.callers, args.reserves, calls)
    await calls.settle()
    return {"saturated": saturated, "most": most, "offered": offered}


async def reserve_latency(bus: Bus, args: argparse.Namespace) -> dict:
    tenant = "bench-budget"
    budget = BudgetRequest(tenant=tenant, action="set", limit_micros=10**12, period="month")
    await bus.request(subjects.LEDGER_BUDGET, budget, BudgetStatus)
    return await latencies(reserve_calls(bus, tenant), args)


async def echo_latency(bus: Bus, args: argparse.Namespace) -> dict:
    await _wait_for_echo(bus)
    return await latencies(echo_calls(bus), args)


async def _wait_for_echo(bus: Bus) -> None:
    for _ in range(200):
        try:
            await bus.request(ECHO_SUBJECT, BudgetRequest(tenant="echo"), BudgetRequest, 1)
            return
        except Exception:
            await asyncio.sleep(0.05)
    raise RuntimeError("the echo service did not answer")


async def echo_server(nats_url: str) -> None:
    """A trivial request/reply service on the same framework as the ledger."""
    from revo_core.endpoints import Endpoints

    setup_tracing("bench-echo")
    bus = await Bus.connect(nats_url, "bench-echo")
    endpoints = Endpoints(bus, "bench_echo")
    await endpoints.start()

    async def echo(request: BudgetRequest) -> BudgetRequest:
        return request

    await endpoints.add("echo", ECHO_SUBJECT, BudgetRequest, echo, "bench-echo")
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await endpoints.stop()
    await bus.close()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# -- the run --------------------------------------------------------------------------------------


async def bench(world: World, args: argparse.Namespace) -> dict:
    assert world.nats is not None and world.postgres is not None
    bus = await Bus.connect(world.nats.url, "bench")
    results: dict = {}
    try:
        await ensure_streams(bus.js)
        events = workload(args.events)
        again = random.Random(2).sample(events, args.duplicates)
        started = time.perf_counter()
        await publish(bus, events, lambda e: e.event_id)
        await publish(bus, again, lambda e: f"again-{e.event_id}")
        deliveries = len(events) + len(again)
        results["publish_rate"] = deliveries / (time.perf_counter() - started)
        print(f"published {deliveries:,} usage events ({len(again):,} republished)", flush=True)
        results["fetch"] = await baseline_fetch(bus, deliveries)
        results["pipelined"] = await baseline_pipelined(bus, deliveries)
        # The ledger's schema, for the COPY baseline's table shape (then dropped again).
        results["ingest"] = await ledger_ingest(world, bus, deliveries, len(events))
        results["copy"] = await baseline_copy(world.postgres.dsn, events)
        results["expected_cost_pico"] = expected_cost_pico(events)
        print("ingest measured; reserving", flush=True)
        await checkpoint(world.postgres.dsn)
        results["reserve"] = await reserve_latency(bus, args)
        world.start_echo()
        results["echo"] = await echo_latency(bus, args)
    finally:
        await bus.close()
    return results


def report(results: dict, args: argparse.Namespace) -> bool:
    ingest = results["ingest"]
    exact = (
        ingest["rows"] == ingest["unique"] and ingest["cost_pico"] == results["expected_cost_pico"]
    )
    cpu = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in ingest["cpu"].items())
    rate = ingest["rate"]
    print()
    print(f"== usage ingest ({ingest['unique']:,} events + {args.duplicates:,} republished)")
    print(
        f"  cost-ledger         {rate:>9,.0f} events/s  ({ingest['seconds']:.2f} s; "
        f"target >= {TARGET_EVENTS_PER_S:,})"
    )
    print(
        f"  exactly once        rows {ingest['rows']:,} of {ingest['unique']:,} distinct events, "
        f"cost {'= expected' if exact else 'WRONG'} "
        f"(${ingest['cost_pico'] / 1e12:,.6f})"
    )
    print(f"  CPU during ingest   {cpu}")
    print("  baselines, same backlog:")
    for name, label in (
        ("pipelined", "consume+ack, pipelined pulls, no DB"),
        ("fetch", "consume+ack, nats-py fetch(1000), no DB"),
        ("copy", "binary COPY, no indexes, no NATS"),
    ):
        ratio = rate / results[name]
        print(f"    {label:<40} {results[name]:>9,.0f} events/s   ledger = {ratio:.2f}x")
    reserve, echo = results["reserve"], results["echo"]
    print()
    print(f"== ledger.reserve, {args.callers} concurrent callers (each hold released after)")
    for mode, label in (
        ("offered", f"at {args.rate:,.0f} reserves/s offered"),
        ("saturated", "back to back (closed loop)"),
    ):
        r50, r99 = pct(reserve[mode], 0.5) * 1e3, pct(reserve[mode], 0.99) * 1e3
        e50, e99 = pct(echo[mode], 0.5) * 1e3, pct(echo[mode], 0.99) * 1e3
        print(f"  {label}:")
        print(f"    ledger.reserve    p50 {r50:6.2f} ms   p99 {r99:6.2f} ms")
        print(f"    echo baseline     p50 {e50:6.2f} ms   p99 {e99:6.2f} ms")
        print(f"    reserve - echo    p50 {r50 - e50:+6.2f} ms   p99 {r99 - e99:+6.2f} ms")
    print(
        f"  most reserves/s: {reserve['most']:,.0f} (echo {echo['most']:,.0f}); "
        f"target p99 <= {TARGET_RESERVE_P99_S * 1e3:.0f} ms at the offered rate"
    )
    machine = {"cpus": psutil.cpu_count(), "at": datetime.datetime.now().isoformat()}
    print(f"\n{json.dumps(machine)}")
    return exact


def main(args: argparse.Namespace) -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    configure_logging("bench", level="WARNING", json=False)
    setup_tracing("bench")
    world = World()
    try:
        world.start()
        results = asyncio.run(bench(world, args))
        return 0 if report(results, args) else 1
    except Exception:
        if world.ledger is not None:
            print(world.ledger.log_tail())
        raise
    finally:
        world.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--duplicates", type=int, default=10_000)
    parser.add_argument("--callers", type=int, default=50)
    parser.add_argument("--reserves", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=200, help="reserves/s offered")
    parser.add_argument("--quick", action="store_true", help="20,000 events, 5,000 reserves")
    parser.add_argument("--echo-server", metavar="NATS_URL", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.echo_server:
        asyncio.run(echo_server(arguments.echo_server))
        sys.exit(0)
    if arguments.quick:
        arguments.events, arguments.duplicates, arguments.reserves = 20_000, 2_000, 5_000
    sys.exit(main(arguments))
