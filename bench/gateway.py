"""The chat gateway's WebSocket chat with `--sessions` sessions at once, against the runs'
token subject on NATS watched directly in the same run.

One nats-server and one Postgres in a scratch directory, `--replicas` agent-runner processes,
a fast agent's model in a process of its own (bench/gateway_model.py: every model call is
answered at once with a plain text reply of `--tokens` tokens, no tool calls; the agent is the
test agent `chatty`, which has no tools), and one chat-gateway process, all as in production
(tracing on, no exporter); bench/runs.py's World with the gateway added. The bench process
opens `--sessions` WebSockets to the gateway (one API key, its per-key limits raised so they
do not throttle the bench), each says `hello` (a session), and then each session sends
messages, reading its run's frames up to the `assistant` item before the next. Two phases,
each `--warmup` s of sending and then `--duration` s measured:

- saturation: every session sends its next message as soon as it has the answer (closed
  loop): throughput, gateway CPU per token frame, latency at saturation;
- paced: the sessions together offer `--rate` messages/s (each one message every
  sessions/rate s, from a random start): the latency users see at that load.

The baseline, in the same run and the same process: one NATS subscription on every run's
token subject (`runs.tokens.<tenant>.>`), as a client subscribing to its run's tokens directly
would see them. Each run's first token is timed both where it arrives from NATS and where its
first `token` frame arrives on the socket (same clock, same event loop); the difference is the
time to first token the gateway adds. Printed, per phase:

- messages/s (answers received), token frames/s received by the clients, and their ratio to
  the token deltas/s the runners published (the NATS subscription's count);
- time to first token, p50/p90/p99/max: added by the gateway, send -> first token frame on
  the socket, and send -> first token on NATS (baseline);
- token frames per second of gateway CPU time, gateway CPU per message, and the CPU seconds
  of every process in the window (the machine is shared: other processes and steal too);

and once: gateway memory per connection (RSS after opening the sockets, then after `hello`,
and the peak under load, minus RSS before, over the number of sockets); dropped = messages
without an answer + token deltas seen on NATS that the run's socket did not get + answers
unlike the tokens streamed for them (must be 0).

Targets: added TTFT p99 <= 10 ms at 500 sessions; >= 2,000 token frames/s per gateway core.
Exit 1 when anything was dropped.

    python bench/gateway.py [--sessions 500] [--duration 20] [--warmup 5] [--tokens 30]
                            [--rate 20] [--phases saturation,paced] [--replicas 1]
                            [--quick]

The gateway's pid is printed to stderr first, for a profiler (py-spy record --pid PID).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import msgspec
import psutil  # comes with pgserver (embedded Postgres)
from runs import MAX_RUNS_ENV, CpuClock, World

from revo_contracts import subjects
from revo_contracts.runs import TokenDelta
from revo_core.bus import Bus
from revo_core.embedded.ports import free_port
from revo_core.embedded.service_process import ServiceProcess
from revo_core.logging import configure_logging
from revo_core.testing.fixtures import create_api_key
from revo_core.tracing import setup_tracing

TENANT = "bench"
AGENT = "chatty"
TARGET_ADDED_TTFT_P99_S = 0.010
TARGET_FRAMES_PER_CORE_S = 2000.0
DEFAULT_RATE = 20.0
# Sockets opened at once: the gateway listens with a backlog of 128.
CONNECT_BATCH = 50
_delta_decoder = msgspec.json.Decoder(TokenDelta)


class Frame(msgspec.Struct):
    """What the bench reads of a server frame (the rest, e.g. an item's event, is skipped)."""

    type: str
    run_id: str | None = None
    kind: str | None = None
    delta: str | None = None
    content: str | None = None
    code: str | None = None
    message: str | None = None


_frame_decoder = msgspec.json.Decoder(Frame)
_encoder = msgspec.json.Encoder()


# -- the world: runs.py's, with the fast agent's model and a chat gateway ------------------


class GatewayWorld(World):
    def __init__(self, replicas: int, max_runs: str, tokens: int) -> None:
        super().__init__(replicas, max_runs)
        self.tokens = tokens
        self.gateway: ServiceProcess | None = None

    def start(self) -> GatewayWorld:
        super().start()
        assert self.nats is not None and self.postgres is not None
        port = free_port()
        env = {
            "NATS_URL": self.nats.url,
            "REVO_CHAT_GATEWAY_DATABASE_URL": self.postgres.dsn,
            "REVO_CHAT_GATEWAY_HTTP_PORT": str(port),
            "REVO_CHAT_GATEWAY_LOG_JSON": "true",
            # The bench is one caller with many sessions: its per-key limits must not bite.
            "REVO_CHAT_GATEWAY_RATE_LIMIT_PER_MINUTE": "10000000",
            "REVO_CHAT_GATEWAY_MAX_CONCURRENT_RUNS": "1000000",
            "OTEL_SERVICE_NAME": "chat-gateway",
            "OTEL_EXPORTER_OTLP_ENDPOINT": "",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "",
        }
        self.gateway = ServiceProcess(
            "revo_chat_gateway", port, env, self.base / "logs" / "chat-gateway.log"
        ).start()
        self.gateway.wait_ready(60)
        return self

    def _start_model(self) -> None:
        assert self.nats is not None
        script = Path(__file__).with_name("gateway_model.py")
        self.model = subprocess.Popen(
            [sys.executable, str(script), self.nats.url, str(self.tokens)],
            stdout=subprocess.PIPE,
        )
        assert self.model.stdout is not None
        if self.model.stdout.readline().strip() != b"ready":
            raise RuntimeError("the fast agent's model process did not start")

    @property
    def ws_url(self) -> str:
        assert self.gateway is not None
        return f"ws://127.0.0.1:{self.gateway.http_port}/v1/ws"

    def gateway_process(self) -> psutil.Process:
        assert self.gateway is not None and self.gateway.process is not None
        return psutil.Process(self.gateway.process.pid)

    def processes(self) -> dict[str, list[psutil.Process]]:
        found = super().processes()
        found.pop("bench (submitter, watch)")
        found["model (fast agent)"] = found.pop("scripted model")
        found["chat-gateway"] = [self.gateway_process()]
        found["bench (clients, NATS watch)"] = [psutil.Process()]
        return found

    def log_tails(self) -> str:
        tails = super().log_tails()
        return tails + ("\n" + self.gateway.log_tail(4000) if self.gateway else "")

    def stop(self) -> None:
        if self.gateway is not None:
            self.gateway.stop(timeout=10)
        super().stop()


# -- what the bench saw --------------------------------------------------------------------


@dataclass
class Message:
    tag: str
    sent: float
    run_id: str | None = None
    answered: float | None = None
    answer: str | None = None
    error: str | None = None
    # The frames the socket got while waiting for the answer, one letter each (for errors).
    trace: list[str] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def end(self, at: float | None = None, answer: str = "", error: str | None = None) -> None:
        self.answered, self.answer, self.error = at, answer if at else None, error
        self.done.set()


@dataclass
class RunTokens:
    """A run's token deltas as one side saw them: when the first came, and all of them."""

    first: float = 0.0
    parts: list[str] = field(default_factory=list)

    def add(self, at: float, delta: str) -> None:
        if not self.parts:
            self.first = at
        self.parts.append(delta)


class NatsWatch:
    """The baseline: every run's token deltas, straight from NATS (the bench's tenant only)."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.runs: defaultdict[str, RunTokens] = defaultdict(RunTokens)
        self.count = 0

    async def start(self) -> NatsWatch:
        subject = subjects.runs_tokens(TENANT, "x").rsplit(".", 1)[0] + ".>"
        self._sub = await self.bus.nc.subscribe(
            subject, cb=self._on_token, pending_msgs_limit=0, pending_bytes_limit=0
        )
        return self

    async def _on_token(self, msg) -> None:
        arrived = time.perf_counter()
        delta = _delta_decoder.decode(msg.data)
        if delta.kind == "text" and delta.delta:
            self.count += 1
            self.runs[msg.subject.rsplit(".", 1)[1]].add(arrived, delta.delta)

    async def stop(self) -> None:
        await self.bus.nc.flush()
        await asyncio.sleep(0.5)  # what is in flight on the connection
        await self._sub.unsubscribe()


class Clients:
    """The sockets, each one session sending its messages one after another."""

    def __init__(self, args: argparse.Namespace, url: str, key: str) -> None:
        self.args = args
        self.url = url
        self.headers = {"Authorization": f"Bearer {key}"}
        self.sockets: list[aiohttp.ClientWebSocketResponse] = []
        self.messages: list[Message] = []
        self.runs: defaultdict[str, RunTokens] = defaultdict(RunTokens)
        self.frames = 0  # token frames received
        self.failures: list[str] = []
        self.numbers = [0] * args.sessions  # messages each session has sent

    async def connect(self, http: aiohttp.ClientSession) -> None:
        async def one() -> None:
            self.sockets.append(await http.ws_connect(self.url, headers=self.headers))

        for start in range(0, self.args.sessions, CONNECT_BATCH):
            count = min(CONNECT_BATCH, self.args.sessions - start)
            await asyncio.gather(*(one() for _ in range(count)))

    async def hello(self) -> None:
        """Each socket opens its session (stored in Postgres) and waits for `session`."""

        async def one(ws: aiohttp.ClientWebSocketResponse) -> None:
            await ws.send_str('{"type":"hello"}')
            frame = _frame_decoder.decode(await ws.receive_str())
            if frame.type != "session":
                raise RuntimeError(f"expected a session frame, got {frame}")

        await asyncio.gather(*(one(ws) for ws in self.sockets))

    def start_reading(self) -> None:
        """A reader per socket, reading all the time, as a browser does (the gateway pings
        idle sockets and closes those that do not answer)."""
        self.current: list[Message | None] = [None] * len(self.sockets)
        self.late = 0  # frames that came when their socket's message had its answer
        self.readers = [
            asyncio.create_task(self._read(index, ws)) for index, ws in enumerate(self.sockets)
        ]

    async def _read(self, index: int, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            now = time.perf_counter()
            if msg.type is not aiohttp.WSMsgType.TEXT:
                continue
            frame = _frame_decoder.decode(msg.data)
            message = self.current[index]
            if message is None or message.done.is_set():
                self.late += 1
            else:
                message.trace.append(
                    frame.type[0] if frame.type != "item" else (frame.kind or "?")[0].upper()
                )
            if frame.type == "token":
                self.frames += 1
                self.runs[frame.run_id or ""].add(now, frame.delta or "")
            elif message is None or message.done.is_set():
                continue
            elif frame.type == "item":
                if frame.kind == "user" and frame.run_id and message.run_id is None:
                    message.run_id = frame.run_id
                elif frame.kind == "assistant" and frame.run_id == message.run_id:
                    message.end(now, frame.content or "")
            elif frame.type == "error":
                message.end(error=f"error frame {frame.code}: {frame.message}")
        message = self.current[index]
        if message is not None and not message.done.is_set():
            message.end(error=f"socket closed: {ws.close_code} {ws.exception()}")

    async def run(self, stop_at: float, period: float) -> None:
        await asyncio.gather(
            *(self._session(index, ws, stop_at, period) for index, ws in enumerate(self.sockets))
        )

    async def _session(
        self, index: int, ws: aiohttp.ClientWebSocketResponse, stop_at: float, period: float
    ) -> None:
        """Messages one after another (period 0), or one every `period` s from a random
        start (a message not answered by then delays the next)."""
        next_at = time.perf_counter() + random.uniform(0.0, period)
        while not self.failures:
            if period:
                await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
                next_at += period
            if time.perf_counter() >= stop_at:
                return
            self.numbers[index] += 1
            tag = f"s{index}m{self.numbers[index]}"
            message = Message(tag, time.perf_counter())
            self.messages.append(message)
            self.current[index] = message
            await ws.send_str(
                _encoder.encode({"type": "message", "content": tag, "agent": AGENT}).decode()
            )
            try:
                await asyncio.wait_for(message.done.wait(), self.args.message_timeout)
            except TimeoutError:
                message.end(error=f"no answer within {self.args.message_timeout:.0f} s")
            if message.error:
                self.failures.append(f"session {index} message {tag}: {message.error}")
                return

    async def close(self) -> None:
        await asyncio.gather(*(ws.close() for ws in self.sockets), return_exceptions=True)
        await asyncio.gather(*self.readers, return_exceptions=True)


# -- the measurement -----------------------------------------------------------------------


@dataclass
class Phase:
    """One measured window: how the sessions sent, and what came of it."""

    name: str
    period: float  # seconds between a session's messages; 0: closed loop, no pause
    window: float = 0.0
    messages: int = 0
    frames: int = 0
    nats_deltas: int = 0
    added: list[float] = field(default_factory=list)
    e2e: list[float] = field(default_factory=list)
    direct: list[float] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)
    cpu_others: float = 0.0
    cpu_stolen: float = 0.0
    rss_peak: int = 0

    @property
    def gateway_cpu(self) -> float:
        return self.cpu.get("chat-gateway", 0.0)

    @property
    def frames_per_core(self) -> float:
        return self.frames / self.gateway_cpu if self.gateway_cpu else 0.0


@dataclass
class Result:
    sessions: int
    phases: list[Phase] = field(default_factory=list)
    rss_before: int = 0
    rss_connected: int = 0
    rss_hello: int = 0
    sent: int = 0
    late: int = 0
    unanswered: list[str] = field(default_factory=list)
    missing_tokens: int = 0
    mismatched: list[str] = field(default_factory=list)

    @property
    def dropped(self) -> int:
        return len(self.unanswered) + self.missing_tokens + len(self.mismatched)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else 0.0


def rss(process: psutil.Process) -> int:
    return process.memory_info().rss


async def settled_rss(process: psutil.Process) -> int:
    await asyncio.sleep(1.0)
    return rss(process)


async def bench(world: GatewayWorld, args: argparse.Namespace) -> Result:
    assert world.nats is not None
    bus = await Bus.connect(world.nats.url, "bench-gateway")
    gateway = world.gateway_process()
    result = Result(sessions=args.sessions)
    connector = aiohttp.TCPConnector(limit=0)
    try:
        key = await create_api_key(bus, TENANT)
        clients = Clients(args, world.ws_url, key)
        async with aiohttp.ClientSession(connector=connector) as http:
            result.rss_before = await settled_rss(gateway)
            await clients.connect(http)
            result.rss_connected = await settled_rss(gateway)
            await clients.hello()
            result.rss_hello = await settled_rss(gateway)
            watch = await NatsWatch(bus).start()
            clients.start_reading()
            phases = []
            if "saturation" in args.phases:
                phases.append(Phase("saturation (closed loop)", 0.0))
            if "paced" in args.phases and args.rate > 0:
                phases.append(Phase(f"paced ({args.rate:g} messages/s)", args.sessions / args.rate))
            for phase in phases:
                if clients.failures:
                    break
                result.phases.append(await run_phase(world, clients, watch, phase, args))
            await asyncio.sleep(1.0)  # for frames that would come after the last answers
            await watch.stop()
            result.late = clients.late
            await clients.close()
        check(clients, watch, result)
        return result
    finally:
        await bus.close()


async def run_phase(
    world: GatewayWorld,
    clients: Clients,
    watch: NatsWatch,
    phase: Phase,
    args: argparse.Namespace,
) -> Phase:
    """`--warmup` s of sending, then `--duration` s measured; returns when every session's
    last message is answered."""
    gateway = world.gateway_process()
    start = time.perf_counter()
    sessions = asyncio.create_task(clients.run(start + args.warmup + args.duration, phase.period))
    await asyncio.sleep(args.warmup)
    clock = CpuClock(world)
    t0 = time.perf_counter()
    frames0, deltas0, count0 = clients.frames, watch.count, len(clients.messages)
    while (left := t0 + args.duration - time.perf_counter()) > 0:
        await asyncio.sleep(min(1.0, left))
        phase.rss_peak = max(phase.rss_peak, rss(gateway))
    t1 = time.perf_counter()
    phase.cpu, phase.cpu_others, phase.cpu_stolen = clock.read()
    phase.window = t1 - t0
    phase.frames = clients.frames - frames0
    phase.nats_deltas = watch.count - deltas0
    await sessions
    phase.messages = sum(
        1 for m in clients.messages if m.answered is not None and t0 <= m.answered < t1
    )
    for message in clients.messages[count0:]:
        if not (t0 <= message.sent < t1) or message.run_id is None:
            continue
        ws, nats = clients.runs.get(message.run_id), watch.runs.get(message.run_id)
        if ws is None or nats is None or not ws.parts or not nats.parts:
            continue
        phase.added.append(ws.first - nats.first)
        phase.e2e.append(ws.first - message.sent)
        phase.direct.append(nats.first - message.sent)
    return phase


def check(clients: Clients, watch: NatsWatch, result: Result) -> None:
    """Every message answered, with every token NATS saw, and tokens that add up."""
    result.sent = len(clients.messages)
    for message in clients.messages:
        if message.answer is None or message.run_id is None:
            result.unanswered.append(f"{message.tag}: {message.error or 'no answer'}")
            continue
        ws = clients.runs.get(message.run_id, RunTokens())
        nats = watch.runs.get(message.run_id, RunTokens())
        result.missing_tokens += max(0, len(nats.parts) - len(ws.parts))
        streamed = "".join(ws.parts)
        if streamed != message.answer or not message.answer.startswith(message.tag + " "):
            result.mismatched.append(
                f"{message.tag} ({message.run_id}): {len(ws.parts)} tokens on the socket, "
                f"{len(nats.parts)} on NATS; streamed {streamed[:40]!r}, answer "
                f"{message.answer[:40]!r}; frames {''.join(message.trace)}"
            )


# -- the report ----------------------------------------------------------------------------


def ms_cells(values: list[float]) -> str:
    return "".join(f"{pct(values, q) * 1000:8.1f}" for q in (0.5, 0.9, 0.99, 1.0))


def report(result: Result, args: argparse.Namespace, max_runs: str) -> None:
    r = result
    cores = os.cpu_count() or 1
    print(
        f"\n{r.sessions} WebSocket sessions on 1 gateway; agent `{AGENT}` answering "
        f"{args.tokens} tokens at once; {args.replicas} agent-runner replica(s) x {max_runs} "
        f"runs at once"
    )
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"each phase: {args.warmup:g} s warm-up, {args.duration:g} s measured; {cores} cores, "
        f"load average {load} at the end (1, 5, 15 min)"
    )
    for phase in r.phases:
        report_phase(phase, args)
    mib = 1024 * 1024
    print("\ngateway memory (RSS)")
    print(f"  before the sockets                       {r.rss_before / mib:10.1f} MiB")
    rows = [
        (f"after {r.sessions} idle sockets", r.rss_connected),
        ("after each sent `hello` (a session)", r.rss_hello),
        *((f"peak, {p.name}", p.rss_peak) for p in r.phases),
    ]
    for label, value in rows:
        per = (value - r.rss_before) / r.sessions / 1024
        print(f"  {label:<41}{value / mib:10.1f} MiB = {per:6.1f} KiB per connection")
    print(f"\ndropped ({r.sent} messages sent in all, warm-up and drain included)")
    print(f"  messages without an answer               {len(r.unanswered):10d}")
    print(f"  token deltas on NATS not on the socket   {r.missing_tokens:10d}")
    print(f"  answers unlike their streamed tokens     {len(r.mismatched):10d}")
    print(f"  frames after a session's last answer     {r.late:10d}")
    report_targets(r)


def report_phase(p: Phase, args: argparse.Namespace) -> None:
    frames_per_s = p.frames / p.window
    deltas_per_s = p.nats_deltas / p.window
    print(f"\n{p.name}")
    print(f"  messages/s (answers received)            {p.messages / p.window:10.1f}")
    print(f"  token frames/s received on the sockets   {frames_per_s:10.1f}")
    print(f"  token deltas/s published (NATS baseline) {deltas_per_s:10.1f}")
    ratio = frames_per_s / deltas_per_s if deltas_per_s else 0.0
    print(f"  ratio sockets/NATS                       {ratio:10.3f}")
    print(
        f"  gateway CPU                              {p.gateway_cpu:10.2f} s "
        f"({p.gateway_cpu / p.window * 100:.0f}% of one core)"
    )
    print(f"  token frames per gateway CPU-second      {p.frames_per_core:10.0f}")
    if p.messages:
        print(
            f"  gateway CPU per message                  {p.gateway_cpu / p.messages * 1000:10.2f}"
            f" ms ({args.tokens} token frames, 7 items, 1 run followed)"
        )
    print(f"  time to first token, ms ({len(p.added)} messages sent in the window)")
    print(f"    {'':<40}{'p50':>8}{'p90':>8}{'p99':>8}{'max':>8}")
    print(f"    {'added by the gateway (socket - NATS)':<40}{ms_cells(p.added)}")
    print(f"    {'send -> first token frame on the socket':<40}{ms_cells(p.e2e)}")
    print(f"    {'send -> first token on NATS (baseline)':<40}{ms_cells(p.direct)}")
    print("  CPU seconds in the window (% of one core):")
    for name, seconds in (
        *p.cpu.items(),
        ("other processes on the machine", p.cpu_others),
        ("stolen by the hypervisor", p.cpu_stolen),
    ):
        print(f"    {name:<34}{seconds:8.2f} s {seconds / p.window * 100:4.0f}%")


def report_targets(r: Result) -> None:
    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    print(f"\ntargets ({r.sessions} sessions):")
    for phase in r.phases:
        p99 = pct(phase.added, 0.99)
        ok = bool(phase.added) and p99 <= TARGET_ADDED_TTFT_P99_S
        print(
            f"  added TTFT p99 <= {TARGET_ADDED_TTFT_P99_S * 1000:.0f} ms, {phase.name}: "
            f"{p99 * 1000:.1f} ms -> {verdict(ok)}"
        )
    for phase in r.phases[:1]:  # the saturation phase where there is one
        per_core = phase.frames_per_core
        print(
            f"  >= {TARGET_FRAMES_PER_CORE_S:.0f} token frames/s per gateway core "
            f"({phase.name}): {per_core:.0f} -> {verdict(per_core >= TARGET_FRAMES_PER_CORE_S)}"
        )
    print(f"  dropped = 0: {r.dropped} -> {verdict(r.dropped == 0)}")


# -- main ----------------------------------------------------------------------------------


def run_async(world: GatewayWorld, args: argparse.Namespace) -> Result:
    """On uvloop where there is one: the bench's clients are load, not what is measured."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(bench(world, args))
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(bench(world, args))


def main(args: argparse.Namespace) -> int:
    # SIGTERM (a killed `make bench`) must still stop the processes the bench started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    configure_logging("bench", level="WARNING", json=False)
    setup_tracing("bench")
    max_runs = os.environ.get(MAX_RUNS_ENV, "64")
    world = GatewayWorld(args.replicas, max_runs, args.tokens)
    try:
        world.start()
        # For a profiler to attach to (py-spy record --pid ...).
        print(f"chat-gateway pid {world.gateway_process().pid}", file=sys.stderr, flush=True)
        result = run_async(world, args)
        report(result, args, max_runs)
        if result.dropped:
            print(
                "dropped, the first 10:", *(result.unanswered + result.mismatched)[:10], sep="\n  "
            )
            if result.unanswered:
                print(world.log_tails())
            return 1
        return 0
    finally:
        world.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sessions", type=int, default=500)
    parser.add_argument("--duration", type=float, default=20.0, help="seconds measured")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds before measuring")
    parser.add_argument("--tokens", type=int, default=30, help="tokens per answer")
    parser.add_argument(
        "--rate",
        type=float,
        default=DEFAULT_RATE,
        help="messages/s offered by all sessions together in the paced phase",
    )
    parser.add_argument(
        "--phases",
        default="saturation,paced",
        help="which phases to run, of saturation,paced (comma-separated)",
    )
    parser.add_argument("--replicas", type=int, default=1, help="agent-runner processes")
    parser.add_argument("--message-timeout", type=float, default=60.0)
    parser.add_argument("--quick", action="store_true", help="100 sessions, 5 s measured")
    arguments = parser.parse_args()
    if arguments.quick:
        arguments.sessions, arguments.duration, arguments.warmup = 100, 5.0, 2.0
        arguments.rate = min(arguments.rate, 10.0)
    sys.exit(main(arguments))
