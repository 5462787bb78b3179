"""Runs per second through the agent-runner, against the same scripted model called directly.

One nats-server and one Postgres in a scratch directory, the scripted model in a process of
its own (bench/scripted_model_process.py, answering `inference.chat` at once), and `--replicas`
agent-runner processes as in production (tracing on, no exporter). A batch of `--runs`
runs is submitted with `--concurrency` of them in flight at once, after 20 warm-up runs;
two kinds of short run are measured:

- tool run: the `scripted` agent calls `list_files` (in its empty per-run workspace), then
  `final_answer`: 2 model calls, 1 tool call, 8 events;
- chat run: the `chatty` agent answers in one text reply: 1 model call, 5 events.

Prints runs/s (first submit to last finished), p50/p95/p99 submit-to-finished latency, the
event-log write latency per event, per run and per step (from the runners' /metrics), and CPU
seconds of each process during each batch. The baseline, in the same run: the very requests
the runners sent, replayed to the same scripted model from the bench process with the same
concurrency (no runner, no events): the floor the runner's bookkeeping adds to.
Targets (tool run): >= 200 runs/s and p99 < 250 ms on 2 cores. Throughput is measured at
saturation (`--concurrency` runs in flight); latency both there and with runs offered at a
steady `--rate` (default 200/s, open loop), which is the latency users see at that load.
With a fixed number of runs in flight the mean latency is that number over the throughput
(Little's law), so at saturation with 50 in flight p50 sits near 50 / runs-per-s whatever
the runner does. Exit 1 when a run fails.

    python bench/runs.py [--runs 1000] [--concurrency 50] [--rate 200] [--replicas 1] [--quick]

Runs each replica executes at once: REVO_AGENT_RUNNER_MAX_CONCURRENT_RUNS (64 here).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import psutil  # comes with pgserver (embedded Postgres)
from nats.aio.msg import Msg
from nats.js.api import DeliverPolicy
from scripted_model_process import FLUSH_SUBJECT

from revo_contracts import subjects
from revo_contracts.inference import ChatChunk, ChatRequest
from revo_contracts.runs import ModelCalled, RunEvent, RunFinished, RunSubmit
from revo_contracts.streams import RUN_EVENTS
from revo_core.bus import Bus
from revo_core.embedded.nats_server import NatsServer
from revo_core.embedded.ports import free_port
from revo_core.embedded.postgres import Postgres
from revo_core.embedded.service_process import ServiceProcess
from revo_core.jetstream import ensure_streams
from revo_core.logging import configure_logging
from revo_core.runs import event_type, is_terminal, new_run_id, submit_run
from revo_core.streaming import stream_request
from revo_core.testing.fixtures import runner_env, write_test_agents_file
from revo_core.tracing import setup_tracing

TENANT = "bench"
WARMUP_RUNS = 20
RUN_TIMEOUT_S = 60.0
MAX_RUNS_ENV = "REVO_AGENT_RUNNER_MAX_CONCURRENT_RUNS"
TARGET_RUNS_PER_S = 200.0
TARGET_P99_S = 0.250
_event_decoder = msgspec.json.Decoder(RunEvent)
_request_decoder = msgspec.json.Decoder(ChatRequest)


@dataclass(frozen=True)
class RunKind:
    """A kind of short run; the model process replies by its shape (tools or not)."""

    name: str
    agent: str


KINDS = (
    RunKind("tool run (list_files, final_answer)", "scripted"),
    RunKind("chat run (one text reply)", "chatty"),
)


@dataclass
class Batch:
    """One measured batch: per-run latencies and what the event stream showed of each run."""

    runs: int
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    events_per_run: float = 0.0
    steps_per_run: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)
    cpu_others: float = 0.0
    cpu_stolen: float = 0.0
    # How it was driven: `concurrency` runs in flight (closed loop), or `offered` runs/s.
    concurrency: int = 0
    offered: float = 0.0

    @property
    def runs_per_s(self) -> float:
        return self.runs / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else 0.0


# -- the world: nats-server, Postgres, agent-runner processes ------------------------------


class World:
    def __init__(self, replicas: int, max_runs: str) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="revo-bench-runs-"))
        # Postgres runs as another user when we are root: it must reach its directory.
        self.base.chmod(0o755)
        self.replicas = replicas
        self.max_runs = max_runs
        self.nats: NatsServer | None = None
        self.postgres: Postgres | None = None
        self.runners: list[ServiceProcess] = []
        self.model: subprocess.Popen[bytes] | None = None
        self.model_record = self.base / "model-requests.jsonl"

    def start(self) -> World:
        self.nats = NatsServer(self.base / "nats").start()
        self.postgres = Postgres(self.base / "pg", free_port()).start()
        self._start_model()
        agents_file = write_test_agents_file(self.base / "agents.yaml")
        for index in range(1, self.replicas + 1):
            self.runners.append(self._runner(f"agent-runner-{index}", agents_file).start())
        for runner in self.runners:
            runner.wait_ready(60)
        return self

    def _start_model(self) -> None:
        assert self.nats is not None
        script = Path(__file__).with_name("scripted_model_process.py")
        self.model = subprocess.Popen(
            [sys.executable, str(script), self.nats.url, str(self.model_record)],
            stdout=subprocess.PIPE,
        )
        assert self.model.stdout is not None
        if self.model.stdout.readline().strip() != b"ready":
            raise RuntimeError("the scripted model process did not start")

    def _runner(self, runner_id: str, agents_file: Path) -> ServiceProcess:
        assert self.nats is not None and self.postgres is not None
        port = free_port()
        env = runner_env(
            self.nats.url, self.postgres.dsn, port, runner_id, self.base / "ws", agents_file
        )
        env.update(
            {
                # Production's defaults, not the tests' short redelivery waits.
                "REVO_AGENT_RUNNER_ACK_WAIT_S": "30",
                "REVO_AGENT_RUNNER_HEARTBEAT_S": "10",
                MAX_RUNS_ENV: self.max_runs,
                # Tracing stays on as in production; spans are made but not exported.
                "OTEL_EXPORTER_OTLP_ENDPOINT": "",
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "",
            }
        )
        return ServiceProcess(
            "revo_agent_runner", port, env, self.base / "logs" / f"{runner_id}.log"
        )

    def processes(self) -> dict[str, list[psutil.Process]]:
        """The processes whose CPU time is counted, by the name printed."""
        assert self.nats is not None and self.nats.process is not None
        found: dict[str, list[psutil.Process]] = {}
        for index, runner in enumerate(self.runners, start=1):
            assert runner.process is not None
            found[f"agent-runner-{index}"] = [psutil.Process(runner.process.pid)]
        found["nats-server"] = [psutil.Process(self.nats.process.pid)]
        found["postgres"] = postgres_processes(self.postgres)
        assert self.model is not None
        found["scripted model"] = [psutil.Process(self.model.pid)]
        found["bench (submitter, watch)"] = [psutil.Process()]
        return found

    def log_tails(self) -> str:
        return "\n".join(runner.log_tail(2000) for runner in self.runners)

    def stop(self) -> None:
        for runner in self.runners:
            runner.stop(timeout=10)
        if self.model is not None:
            self.model.terminate()
            self.model.wait(timeout=10)
        if self.postgres is not None:
            self.postgres.stop()
        if self.nats is not None:
            self.nats.stop()
        shutil.rmtree(self.base, ignore_errors=True)


def postgres_processes(postgres: Postgres | None) -> list[psutil.Process]:
    """The postmaster and its backends, as they are now."""
    assert postgres is not None
    pid = int((postgres.data_dir / "postmaster.pid").read_text().split()[0])
    postmaster = psutil.Process(pid)
    return [postmaster, *postmaster.children(recursive=True)]


class CpuClock:
    """CPU seconds (user + system) each named group of processes spent since it was made
    (Postgres backends started since count from zero); what the rest of the machine spent
    meanwhile; and the time the hypervisor gave our cores to someone else (steal)."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.start = {p.pid: t for ps in world.processes().values() for p, t in _cpu(ps)}
        self.machine_start = psutil.cpu_times()

    def read(self) -> tuple[dict[str, float], float, float]:
        """(CPU seconds by process group, of every other process, stolen)."""
        ours = {
            name: sum(t - self.start.get(p.pid, 0.0) for p, t in _cpu(processes))
            for name, processes in self.world.processes().items()
        }
        now, then = psutil.cpu_times(), self.machine_start
        busy = sum(getattr(now, k) - getattr(then, k) for k in _BUSY if hasattr(now, k))
        steal = getattr(now, "steal", 0.0) - getattr(then, "steal", 0.0)
        return ours, max(busy - sum(ours.values()), 0.0), steal


# What psutil.cpu_times() counts as work done on this machine (guest time is in user).
_BUSY = ("user", "nice", "system", "irq", "softirq")


def _cpu(processes: list[psutil.Process]) -> list[tuple[psutil.Process, float]]:
    times = []
    for process in processes:
        try:
            cpu = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        times.append((process, cpu.user + cpu.system))
    return times


# -- the runners' /metrics -----------------------------------------------------------------


def scrape(url: str) -> dict[str, float]:
    """Sum and count of event writes, and runs ended, from one runner's /metrics."""
    with urllib.request.urlopen(url, timeout=5) as response:
        lines = response.read().decode().splitlines()
    found = {"write_sum": 0.0, "write_count": 0.0, "runs_ended": 0.0}
    names = {
        "revo_run_event_write_seconds_sum": "write_sum",
        "revo_run_event_write_seconds_count": "write_count",
        "revo_runs_ended_total": "runs_ended",
    }
    for line in lines:
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in names:
            found[names[name]] += float(line.rsplit(" ", 1)[1])
    return found


async def scrape_all(world: World) -> list[dict[str, float]]:
    return [await asyncio.to_thread(scrape, runner.metrics_url) for runner in world.runners]


def metrics_delta(before: list[dict], after: list[dict]) -> list[dict[str, float]]:
    return [{key: a[key] - b[key] for key in a} for b, a in zip(before, after, strict=True)]


# -- watching run events -------------------------------------------------------------------


class EventWatch:
    """Arrival time of each run's terminal event, and how many events and steps it had.

    One ordered consumer on every run's events (the bench is alone on its nats-server, so
    all of RUN_EVENTS is the bench tenant's): a RunFollower per run would cost an ordered
    consumer per run, created and deleted 200 times a second, load that a real client
    following one run does not add to a busy server. Events are timed as they arrive from
    the stream, after JetStream stored them, as a follower sees them."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.waiting: dict[str, asyncio.Future[tuple[float, object]]] = {}
        self.events: defaultdict[str, int] = defaultdict(int)
        self.steps: defaultdict[str, int] = defaultdict(int)

    async def start(self) -> EventWatch:
        self._sub = await self.bus.js.subscribe(
            RUN_EVENTS.subjects[0],
            cb=self._on_event,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.NEW,
        )
        return self

    async def stop(self) -> None:
        await self._sub.unsubscribe()

    def expect(self, run_id: str) -> asyncio.Future[tuple[float, object]]:
        future = asyncio.get_running_loop().create_future()
        self.waiting[run_id] = future
        return future

    async def _on_event(self, msg: Msg) -> None:
        arrived = time.perf_counter()
        event = _event_decoder.decode(msg.data)
        self.events[event.run_id] += 1
        if isinstance(event, ModelCalled):
            self.steps[event.run_id] = max(self.steps[event.run_id], event.step)
        future = self.waiting.get(event.run_id)
        if is_terminal(event) and future is not None and not future.done():
            future.set_result((arrived, event))


# -- batches -------------------------------------------------------------------------------


async def closed_loop(count: int, concurrency: int, one: Callable[[int], Awaitable[None]]) -> None:
    """`one(index)` for each index, `concurrency` of them in flight at any time."""
    indexes = iter(range(count))

    async def worker() -> None:
        for index in indexes:
            await one(index)

    await asyncio.gather(*(worker() for _ in range(min(concurrency, count))))


async def open_loop(count: int, rate: float, one: Callable[[int], Awaitable[None]]) -> None:
    """`one(index)` started at `rate` per second whatever is still in flight: the load a
    steady stream of users offers, so latency is measured at that rate, not at saturation."""
    started = time.perf_counter()
    tasks = []
    for index in range(count):
        delay = started + index / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(index)))
    await asyncio.gather(*tasks)


async def runner_batch(
    bus: Bus,
    watch: EventWatch,
    kind: RunKind,
    count: int,
    concurrency: int,
    rate: float | None = None,
) -> tuple[Batch, list[str]]:
    run_ids = [new_run_id() for _ in range(count)]
    batch = Batch(runs=count, concurrency=concurrency, offered=rate or 0.0)
    submitted: list[float] = []
    finished: list[float] = []

    async def one(index: int) -> None:
        run_id = run_ids[index]
        done = watch.expect(run_id)
        started = time.perf_counter()
        submitted.append(started)
        await submit_run(bus, RunSubmit(run_id=run_id, tenant=TENANT, agent=kind.agent, task="go"))
        try:
            arrived, event = await asyncio.wait_for(done, RUN_TIMEOUT_S)
        except TimeoutError:
            batch.failures.append(f"{run_id}: no terminal event within {RUN_TIMEOUT_S:.0f} s")
            return
        finally:
            watch.waiting.pop(run_id, None)
        finished.append(arrived)
        batch.latencies.append(arrived - started)
        if not isinstance(event, RunFinished):
            batch.failures.append(f"{run_id}: {event_type(event)} {_reason(event)}")

    if rate is None:
        await closed_loop(count, concurrency, one)
    else:
        await open_loop(count, rate, one)
    batch.seconds = max(finished, default=0.0) - min(submitted)
    batch.events_per_run = sum(watch.events[r] for r in run_ids) / count
    batch.steps_per_run = sum(watch.steps[r] for r in run_ids) / count
    return batch, run_ids


def _reason(event: object) -> str:
    return f"{getattr(event, 'code', '')}: {getattr(event, 'reason', '')}".strip(": ")


async def baseline_batch(bus: Bus, runs: list[list[ChatRequest]], concurrency: int) -> Batch:
    """The recorded model calls of each run, in order, straight to the scripted model."""
    batch = Batch(runs=len(runs))
    started_at = time.perf_counter()

    async def one(index: int) -> None:
        started = time.perf_counter()
        for request in runs[index]:
            async with stream_request(bus, subjects.INFERENCE_CHAT, request, ChatChunk) as chunks:
                async for _ in chunks:
                    pass
        batch.latencies.append(time.perf_counter() - started)

    await closed_loop(len(runs), concurrency, one)
    batch.seconds = time.perf_counter() - started_at
    return batch


async def recorded_calls(bus: Bus, world: World, run_ids: list[str]) -> list[list[ChatRequest]]:
    """The model calls the runners made for `run_ids`, as the model process recorded them."""
    await bus.nc.request(FLUSH_SUBJECT, b"", timeout=10)
    wanted = set(run_ids)
    by_run: defaultdict[str, list[ChatRequest]] = defaultdict(list)
    with world.model_record.open("rb") as record:
        for line in record:
            request = _request_decoder.decode(line)
            if request.run_id in wanted:
                by_run[request.run_id].append(request)
    return [by_run[run_id] for run_id in run_ids]


@dataclass
class KindResult:
    kind: RunKind
    runner: Batch
    baseline: Batch
    writes: list[dict[str, float]]
    # The same kind of run offered at the target rate (open loop): latency at that load.
    at_rate: Batch | None = None


async def measure_kind(
    world: World,
    bus: Bus,
    watch: EventWatch,
    kind: RunKind,
    args: argparse.Namespace,
) -> KindResult:
    warm, warm_ids = await runner_batch(bus, watch, kind, WARMUP_RUNS, args.concurrency)
    if warm.failures:
        return KindResult(kind, warm, Batch(runs=0), [])
    before = await scrape_all(world)
    clock = CpuClock(world)
    runner, run_ids = await runner_batch(bus, watch, kind, args.runs, args.concurrency)
    runner.cpu, runner.cpu_others, runner.cpu_stolen = clock.read()
    writes = metrics_delta(before, await scrape_all(world))
    await baseline_batch(bus, await recorded_calls(bus, world, warm_ids), args.concurrency)
    calls = await recorded_calls(bus, world, run_ids)
    clock = CpuClock(world)
    baseline = await baseline_batch(bus, calls, args.concurrency)
    baseline.cpu, baseline.cpu_others, baseline.cpu_stolen = clock.read()
    baseline.steps_per_run = sum(len(c) for c in calls) / len(calls)
    at_rate, _ = await runner_batch(bus, watch, kind, args.runs, 0, rate=args.rate)
    return KindResult(kind, runner, baseline, writes, at_rate)


# -- the report ----------------------------------------------------------------------------


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.1f}"


def batch_row(label: str, batch: Batch) -> str:
    return (
        f"  {label:<28}{batch.runs_per_s:>9.1f}{ms(batch.pct(0.5))}{ms(batch.pct(0.95))}"
        f"{ms(batch.pct(0.99))}{batch.events_per_run:>11.1f}{batch.steps_per_run:>11.1f}"
        f"{len(batch.failures):>8}"
    )


def report_kind(result: KindResult) -> None:
    runner, baseline = result.runner, result.baseline
    print(result.kind.name)
    print(batch_row("through the agent-runner", runner))
    if result.at_rate is not None:
        print(batch_row(f"  at {result.at_rate.offered:.0f} runs/s offered", result.at_rate))
    print(batch_row("model only (baseline)", baseline))
    ratio = runner.runs_per_s / baseline.runs_per_s if baseline.runs_per_s else 0.0
    added = [runner.pct(q) - baseline.pct(q) for q in (0.5, 0.95, 0.99)]
    print(
        f"  {'ratio runner/baseline, added':<28}{ratio:>9.3f}"
        + "".join(f"{a * 1000:>+8.1f}" for a in added)
    )


def report_writes(result: KindResult) -> None:
    count = sum(w["write_count"] for w in result.writes)
    seconds = sum(w["write_sum"] for w in result.writes)
    runs, steps = result.runner.runs, result.runner.steps_per_run
    per_event = seconds / count if count else 0.0
    per_run = seconds / runs
    print(
        f"  {result.kind.agent:<9} {count / runs:4.1f} writes/run x {per_event * 1000:5.2f} ms "
        f"= {per_run * 1000:6.2f} ms/run; {steps:.1f} steps/run -> "
        f"{per_run / steps * 1000 if steps else 0.0:6.2f} ms per step"
    )
    if len(result.writes) > 1:
        shares = ", ".join(f"{w['runs_ended']:.0f}" for w in result.writes)
        print(f"            runs ended per replica: {shares}")


def report_cpu(results: list[KindResult]) -> None:
    columns = [
        (f"{r.kind.agent} {side}", b)
        for r in results
        for side, b in (("runner", r.runner), ("baseline", r.baseline))
    ]
    print(f"\nCPU seconds (and % of one core) during each measured batch, {os.cpu_count()} cores:")
    print(f"  {'':<32}" + "".join(f"{name:>18}" for name, _ in columns))
    for process in columns[0][1].cpu:
        print(f"  {process:<32}" + "".join(_cpu_cell(b.cpu[process], b) for _, b in columns))
    print(f"  {'all':<32}" + "".join(_cpu_cell(sum(b.cpu.values()), b) for _, b in columns))
    per_run = "".join(f"{sum(b.cpu.values()) / b.runs * 1000:>15.2f} ms" for _, b in columns)
    print(f"  {'all, CPU per run':<32}{per_run}")
    ceiling = "".join(
        f"{os.cpu_count() * b.runs / sum(b.cpu.values()):>13.0f} runs/s" for _, b in columns
    )
    print(f"  {'ceiling: cores / CPU per run':<32}{ceiling}")
    print(f"  {'batch wall time':<32}" + "".join(f"{b.seconds:>16.2f} s" for _, b in columns))
    print(
        f"  {'other processes on the machine':<32}"
        + "".join(_cpu_cell(b.cpu_others, b) for _, b in columns)
    )
    print(
        f"  {'stolen by the hypervisor':<32}"
        + "".join(_cpu_cell(b.cpu_stolen, b) for _, b in columns)
    )


def _cpu_cell(cpu_s: float, batch: Batch) -> str:
    return f"{cpu_s:>11.2f} s {cpu_s / batch.seconds * 100:>3.0f}%"


def report_targets(result: KindResult, replicas: int) -> None:
    runner = result.runner

    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    print(f"\ntargets ({result.kind.name}, {replicas} replica(s), {os.cpu_count()} cores):")
    print(
        f"  throughput >= {TARGET_RUNS_PER_S:.0f} runs/s: {runner.runs_per_s:.1f} -> "
        f"{verdict(runner.runs_per_s >= TARGET_RUNS_PER_S)}"
    )
    print(
        f"  p99 submit-to-finished < {TARGET_P99_S * 1000:.0f} ms at saturation "
        f"({result.runner.concurrency} in flight): "
        f"{runner.pct(0.99) * 1000:.1f} ms -> {verdict(runner.pct(0.99) < TARGET_P99_S)}"
    )
    at_rate = result.at_rate
    if at_rate is not None:
        p99 = at_rate.pct(0.99)
        print(
            f"  p99 submit-to-finished < {TARGET_P99_S * 1000:.0f} ms at "
            f"{at_rate.offered:.0f} runs/s offered: {p99 * 1000:.1f} ms -> "
            f"{verdict(p99 < TARGET_P99_S and at_rate.runs_per_s >= 0.95 * at_rate.offered)}"
        )


def report(results: list[KindResult], args: argparse.Namespace, max_runs: str) -> None:
    print(
        f"\n{args.runs} runs per batch (+{WARMUP_RUNS} warm-up), {args.concurrency} in flight "
        f"from the submitter, {args.replicas} agent-runner replica(s) x {max_runs} runs at once"
    )
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"{os.cpu_count()} cores, load average {load} at the end (1, 5, 15 min)")
    print(
        f"  {'':<28}{'runs/s':>9}{'p50 ms':>8}{'p95 ms':>8}{'p99 ms':>8}"
        f"{'events/run':>11}{'steps/run':>11}{'failed':>8}"
    )
    for result in results:
        report_kind(result)
    print("\nevent-log writes, from appending an event to its being in Postgres (group commit)")
    print("and published; the run waits for them only before side effects and at its end.")
    print("From the runners' /metrics (`queued` is copied to Postgres, not published again):")
    for result in results:
        report_writes(result)
    report_cpu(results)
    report_targets(results[0], args.replicas)


# -- main ----------------------------------------------------------------------------------


async def bench(world: World, args: argparse.Namespace) -> list[KindResult]:
    assert world.nats is not None
    bus = await Bus.connect(world.nats.url, "bench-submitter")
    watch = await EventWatch(bus).start()
    try:
        await ensure_streams(bus.js)
        results = []
        for kind in KINDS:
            result = await measure_kind(world, bus, watch, kind, args)
            results.append(result)
            if result.runner.failures:
                break
        return results
    finally:
        await watch.stop()
        await bus.close()


def failed_runs(results: list[KindResult]) -> list[str]:
    return [f"{r.kind.agent}: {f}" for r in results for f in r.runner.failures]


def main(args: argparse.Namespace) -> int:
    # SIGTERM (a killed `make bench`) must still stop the processes the bench started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    configure_logging("bench", level="WARNING", json=False)
    setup_tracing("bench")  # the submitter's and the model's spans, as a client's would be
    max_runs = os.environ.get(MAX_RUNS_ENV, "64")
    world = World(args.replicas, max_runs)
    try:
        world.start()
        results = asyncio.run(bench(world, args))
        failures = failed_runs(results)
        if failures:
            print(f"{len(failures)} run(s) did not finish:", *failures[:20], sep="\n  ")
            print(world.log_tails())
            return 1
        report(results, args, max_runs)
        return 0
    finally:
        world.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument(
        "--rate",
        type=float,
        default=TARGET_RUNS_PER_S,
        help="runs/s offered in the open-loop batch that measures latency at that load",
    )
    parser.add_argument("--quick", action="store_true", help="100 runs per batch")
    arguments = parser.parse_args()
    if arguments.quick:
        arguments.runs = 100
    sys.exit(main(arguments))
