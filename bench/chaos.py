"""Chaos: the embedded platform under a steady mixed load while each process in turn is
killed with SIGKILL and brought back by `revo up`'s supervisor, then checks that nothing
was lost, hung or counted twice.

The platform is the real one: `revo up` (the CLI) in a scratch REVO_STATE_DIR, so real
nats-server with JetStream and credentials, real Postgres, every service, the real vLLM
model, all under the supervisor. The bench speaks to NATS as the operator
(<state dir>/nats-auth/creds/operator.creds) and to the gateway with an API key made by
`revo keys create`. One agent is added to the runner's agents file, `brief` (the
assistant's prompt asking for one sentence, memory recall before answering, at most 24
tokens), so a chat costs the small CPU model a couple of seconds.

Load, each kind at a fixed interval with a bound on how many are in flight (loopback only):

- ws chat: a WebSocket on /v1/ws, `hello`, one message to `brief`, its answer (the
  `assistant` item); a dropped socket reconnects and resumes with `hello {session_id,
  last_seq}` as the web page does;
- openai: POST /v1/chat/completions, `revo/brief`, streamed, max_tokens 16;
- tool run: a RunSubmit of `code-analyst` on a two-file git repository (detect_languages,
  run_linter, the model's summary), submitted with revo_core.runs.submit_run and followed
  with RunFollower;
- usage event: a UsageEvent with a new event id published straight to `usage.<tenant>`
  through JetStream with Nats-Msg-Id; one in four is published twice (a retry after a lost
  ack), and a publish that fails is retried with the same id until it is acked;
- memory store: memory.store of one generated memory (bench/memory.py's generator);
- cost report: ledger.report of the usage tenant (the cost ledger's recovery probe).

Phases: a warm-up; the baseline, `--duration` s of the load with no kills; then the chaos
phase, the same load while inference, agent-runner, chat-gateway, cost-ledger and memory
(pid from state.json) are killed in turn, each once the previous one is back (supervisor:
ready) and has answered again, then nats-server, then Postgres; each kill waits (at most
30 s) for a request it serves to be in the middle of its work (a chat whose run is going
for the gateway, a tool run for the runner), so what a process was doing when it died is
put to the test, not only its restart; the load goes on until the
chaos phase is at least as long as the baseline. Then the load stops, what is in flight
ends, and the invariants are checked:

- every accepted request answered or failed with a typed error (an error frame, OpenAI's
  error shape, a failed run's code, a revo error or a NATS timeout); untyped failures and
  requests with no outcome by their deadline (hangs) are failures. A request whose HTTP
  connection was cut by the kill of the gateway serving it is counted apart (nothing can
  answer it), and its run is still checked. A request that was never accepted
  (connection refused, submit not acknowledged) is counted apart;
- 0 runs lost: every run the bench knows of (tool runs, the gateway's runs of chats and
  completions) has a terminal event in RUN_EVENTS and a terminal status in runs.api.get;
- 0 usage events charged twice: the ledger's report for the usage tenant counts exactly
  the distinct events acknowledged;
- 0 memories lost: every acknowledged store is found by memory.history;
- no Python exception text in an error's message (`ConnectionRefusedError: [Errno 111]`):
  a typed error still must not show a client the platform's insides;
- recovery per process: kill to ready again (the supervisor's record), and kill to the
  first success of each kind of request started after the kill.

Printed: outcomes by kind and phase, throughput and p50/p95 per kind in the baseline and
under chaos with their ratio, recovery times, the invariants, the CPU each process group
used per phase, and the machine. Exit 1 when an invariant is broken.

    .venv/bin/python bench/chaos.py [--duration 120] [--quick]

--quick: a 30 s baseline and every kill but inference's (whose model takes ~100 s to load
on 2 busy cores), about 4 minutes in all.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import msgspec
import psutil  # comes with pgserver (embedded Postgres)
import yaml
from gateway import Frame, pct
from machine import machine_line
from memory import generate
from nats.errors import Error as NatsError
from runs import CpuClock

from revo_contracts import subjects
from revo_contracts.ledger import CostReport, ReportRequest
from revo_contracts.memory import (
    MemoryHistoryRequest,
    MemoryHistoryResponse,
    MemoryInput,
    MemoryScope,
    MemoryStoreRequest,
    MemoryStoreResponse,
)
from revo_contracts.runs import RunDetail, RunGetRequest, RunSubmit, Workspace
from revo_contracts.streams import RUN_EVENTS
from revo_contracts.usage import UsageEvent
from revo_core.bus import Bus
from revo_core.errors import BusUnavailable, RevoError, ServiceError
from revo_core.logging import configure_logging
from revo_core.runs import RunFollower, event_type, is_terminal, new_run_id, submit_run

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
from revo_up_helpers import platform_env, process_record, read_state, revo, temp_state_dir

TENANT = "chaos"  # chats, completions and runs (the API key's tenant)
USAGE_TENANT = "chaos-usage"  # only the bench's own usage events are charged here
MEMORY_SCOPE = MemoryScope(tenant="chaos-memory", repository="chaos-bench")
CHAT_MODEL = "smollm2-135m-instruct"
AGENTS_FILE = Path(__file__).parents[1] / "services/agent-runner/revo_agent_runner/agents.yaml"
BRIEF_AGENT = {
    "description": "One short sentence (the chaos bench's chats).",
    "prompt": "You are revo's assistant. Answer in one short sentence.",
    "recall": {"top_k": 3, "token_budget": 200, "min_score": 0.3},
    "temperature": 0.3,
    "max_tokens_per_step": 24,
}
KILL_ORDER = (
    "inference", "agent-runner", "chat-gateway", "cost-ledger", "memory", "nats-server",
    "postgres",
)  # fmt: skip
# Before the next kill: the killed process ready again and one of these kinds answered
# again (started after the kill). All kinds' first successes are printed.
PROBE = {
    "inference": "openai",
    "agent-runner": "openai",
    "chat-gateway": "openai",
    "cost-ledger": "cost report",
    "memory": "memory store",
    "nats-server": "usage event",
    "postgres": "openai",
}
# Each kill lands while a request of this kind is in flight (a run's, once it has a run), so
# what the process was doing when it died is put to the test, not only its restart.
KILLED_MID = {
    "inference": "ws chat",
    "agent-runner": "tool run",
    "chat-gateway": "ws chat",
    "cost-ledger": "cost report",
    "memory": "memory store",
    "nats-server": "openai",
    "postgres": "ws chat",
}
MID_WAIT_S = 30.0
SERVED_OVER_HTTP_BY = "chat-gateway"
BACK_WITHIN_S = 240.0
SETTLE_S = 5.0
WARMUP_S = 20.0
DRAIN_S = 240.0

_encoder = msgspec.json.Encoder()
# `ConnectionRefusedError: [Errno 111] ...`, `KeyError: 'x'`, a traceback.
EXCEPTION_TEXT = re.compile(r"\b[A-Z]\w*(Error|Exception)\b: |\[Errno \d+\]|Traceback \(")


# -- the platform: `revo up` in a scratch state directory ---------------------------------


class Platform:
    def __init__(self) -> None:
        self.state_dir = temp_state_dir()
        agents = self.state_dir / "agents.yaml"
        spec = yaml.safe_load(AGENTS_FILE.read_text())
        spec["agents"]["brief"] = BRIEF_AGENT
        agents.write_text(yaml.safe_dump(spec))
        self.env = platform_env(self.state_dir, REVO_AGENT_RUNNER_AGENTS_FILE=str(agents))
        self.repo = tiny_repo(self.state_dir / "shop")

    def up(self) -> float:
        started = time.monotonic()
        result = revo("up", env=self.env, timeout=600)
        if result.returncode != 0:
            raise RuntimeError(f"revo up failed:\n{result.stdout}\n{result.stderr}")
        return time.monotonic() - started

    def operator_creds(self) -> Path:
        """The operator's credentials `revo up` keeps; issued with `revo creds create` when
        `revo up` left none (it says where they are but, on this branch, does not write
        them: reported)."""
        path = self.state_dir / "nats-auth" / "creds" / "operator.creds"
        if not path.exists():
            print("note: revo up wrote no operator.creds; issuing it with revo creds create")
            made = revo("creds", "create", "--role", "operator", "--out", str(path), env=self.env)
            if made.returncode != 0:
                raise RuntimeError(f"revo creds create failed: {made.stderr}")
        return path

    def api_key(self) -> str:
        made = revo("keys", "create", "--tenant", TENANT, "--name", "chaos-bench", env=self.env)
        if made.returncode != 0:
            raise RuntimeError(f"revo keys create failed: {made.stdout}{made.stderr}")
        return made.stdout.strip()

    def state(self) -> dict:
        return read_state(self.env)

    @property
    def nats_url(self) -> str:
        return self.state()["nats_url"]

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.state()['services']['chat-gateway']['http_port']}"

    def record(self, name: str) -> dict:
        return process_record(self.state(), name)

    def processes(self) -> dict[str, list[psutil.Process]]:
        """Each supervised process and its children (vLLM's engine, Postgres's backends), as
        they are now: runs.CpuClock counts their CPU time."""
        found = {}
        for name in KILL_ORDER:
            with_children: list[psutil.Process] = []
            try:
                leader = psutil.Process(self.record(name)["pid"])
                with_children = [leader, *leader.children(recursive=True)]
            except (psutil.NoSuchProcess, ValueError):
                pass
            found[name] = with_children
        found["bench (clients)"] = [psutil.Process()]
        return found

    def down(self) -> None:
        revo("down", env=self.env, timeout=180)
        shutil.rmtree(self.state_dir, ignore_errors=True)


def tiny_repo(path: Path) -> Path:
    """Two files, two lint findings: what code-analyst reviews."""
    (path / "shop").mkdir(parents=True)
    (path / "shop" / "cart.py").write_text(
        "import os\n\n\ndef total(items):\n    return sum(item.price for item in itemz)\n"
    )
    (path / "README.md").write_text("# shop\n")
    git = ["git", "-c", "user.name=chaos", "-c", "user.email=chaos@example.com", "-C", str(path)]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "shop"], check=True)
    return path


# -- outcomes --------------------------------------------------------------------------------


class NotAccepted(Exception):
    """The request never got in (connection refused, submit not acknowledged)."""


class Dropped(Exception):
    """The connection to the gateway was cut before an answer."""


class Untyped(Exception):
    """A failure with no error code: a body that is not OpenAI's error shape, a socket
    closed without an error frame, an unexpected exception."""


@dataclass
class Outcome:
    kind: str
    started: float
    ended: float
    result: str = ""  # ok, typed <code>, dropped, not accepted, untyped <what>, hang
    detail: str = ""
    run_id: str = ""  # the run it made, where it made one
    platform_said: str = ""  # an error's message as the platform sent it

    @property
    def leaks_exception(self) -> bool:
        """The error's message carries Python exception text (a class name and its words,
        an errno), which no client may see (DESIGN.md §3)."""
        return bool(EXCEPTION_TEXT.search(self.platform_said))

    @property
    def seconds(self) -> float:
        return self.ended - self.started

    @property
    def accepted(self) -> bool:
        return self.result != "not accepted"


@dataclass
class Record:
    """Everything the load saw, for the checks afterwards."""

    outcomes: list[Outcome] = field(default_factory=list)
    run_ids: set[str] = field(default_factory=set)
    usage_published: set[str] = field(default_factory=set)
    usage_acked: set[str] = field(default_factory=set)
    usage_publishes: int = 0
    memories: list[tuple[str, str]] = field(default_factory=list)  # (id, text) acked
    kills: list[tuple[str, float]] = field(default_factory=list)  # (process, time)
    in_flight: list[Outcome] = field(default_factory=list)  # requests going on now

    def after_kill(self, outcome: Outcome) -> str:
        """The kills while the request was going, else the last one before it started."""
        during = [n for n, t in self.kills if outcome.started <= t <= outcome.ended]
        if during:
            return f"kill -9 of {', '.join(during)} meanwhile"
        before = [(t, n) for n, t in self.kills if t <= outcome.started]
        if not before:
            return "before any kill"
        at, name = max(before)
        return f"started {outcome.started - at:.1f} s after kill -9 of {name}"

    def killed_during(self, name: str, outcome: Outcome) -> bool:
        return any(n == name and outcome.started <= t <= outcome.ended for n, t in self.kills)


def classify(exc: BaseException) -> tuple[str, str]:
    """(result, detail) of a request that raised."""
    if isinstance(exc, NotAccepted):
        return "not accepted", str(exc)
    if isinstance(exc, Dropped):
        return "dropped", str(exc)
    if isinstance(exc, ServiceError):
        return f"typed {exc.code.value}", exc.message[:200]
    if isinstance(exc, BusUnavailable):
        return "typed unavailable", str(exc)[:120]
    if isinstance(exc, NatsError | TimeoutError) and not isinstance(exc, Untyped):
        # The NATS client's own errors (a publish not acknowledged in time) are typed.
        return f"typed nats {type(exc).__name__}", str(exc)[:120]
    return f"untyped {type(exc).__name__}", str(exc)[:200]


class Typed(Exception):
    """A typed failure the client was told about: an error frame, an OpenAI error, a run
    that ended failed or cancelled."""

    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(message)
        self.code = code


async def attempt(
    record: Record, kind: str, deadline: float, one: Callable[[Outcome], Awaitable[None]]
) -> None:
    """Run one request, recording its outcome; no outcome within `deadline` s is a hang."""
    started = time.monotonic()
    outcome = Outcome(kind, started, started)
    record.in_flight.append(outcome)
    try:
        await asyncio.wait_for(one(outcome), deadline)
        result, detail = "ok", ""
    except TimeoutError as exc:
        # wait_for's own timeout has no cause; a NATS or HTTP timeout inside has one.
        hung = time.monotonic() - started >= deadline - 0.05
        result, detail = ("hang", f"no outcome in {deadline:.0f} s") if hung else classify(exc)
    except Typed as exc:
        result, detail = f"typed {exc.code}", str(exc)[:200]
        outcome.platform_said = str(exc)
    except ServiceError as exc:
        result, detail = classify(exc)
        outcome.platform_said = exc.message
    except Exception as exc:
        result, detail = classify(exc)
    outcome.ended, outcome.result, outcome.detail = time.monotonic(), result, detail
    record.in_flight.remove(outcome)
    record.outcomes.append(outcome)


# -- the kinds of load -----------------------------------------------------------------------


@dataclass
class Clients:
    bus: Bus
    http: aiohttp.ClientSession
    platform: Platform
    key: str
    record: Record
    memory_texts: list[str]
    numbers: Counter = field(default_factory=Counter)

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def note_run(self, outcome: Outcome, run_id: str) -> None:
        outcome.run_id = run_id
        self.record.run_ids.add(run_id)

    def next(self, kind: str) -> int:
        self.numbers[kind] += 1
        return self.numbers[kind]

    # -- WebSocket chat

    async def ws_chat(self, outcome: Outcome) -> None:
        n = self.next("ws chat")
        chat = WsChat(self, outcome, f"chaos chat {n}: what is a unit test?")
        await chat.run()

    # -- OpenAI API

    async def openai(self, outcome: Outcome) -> None:
        n = self.next("openai")
        body = {
            "model": "revo/brief",
            "messages": [{"role": "user", "content": f"chaos completion {n}: name a colour."}],
            "max_tokens": 16,
            "stream": True,
        }
        url = f"{self.platform.gateway_url}/v1/chat/completions"
        try:
            response = await self.http.post(url, json=body, headers=self.auth)
        except aiohttp.ClientConnectionError as exc:
            raise NotAccepted(f"connect: {exc}") from None
        async with response:
            run_id = response.headers.get("X-Revo-Run-Id")
            if run_id:
                self.note_run(outcome, run_id)
            if response.status != 200:
                raise openai_error(response.status, await response.read())
            await read_sse(response)

    # -- runs with tools

    async def tool_run(self, outcome: Outcome) -> None:
        run_id = new_run_id()
        submit = RunSubmit(
            run_id=run_id,
            tenant=TENANT,
            agent="code-analyst",
            task="Review this repository.",
            workspace=Workspace(repo=str(self.platform.repo)),
        )
        async with RunFollower(self.bus, TENANT, run_id, tokens=False, replay=False) as run:
            await submit_until_acked(self.bus, submit)
            self.note_run(outcome, run_id)
            async for event in run:
                if is_terminal(event) and event_type(event) != "finished":
                    raise Typed(getattr(event, "code", event_type(event)), _reason(event))

    # -- usage events

    async def usage_event(self, outcome: Outcome) -> None:
        n = self.next("usage event")
        event = UsageEvent(
            event_id=f"chaos-{uuid.uuid4().hex}",
            tenant=USAGE_TENANT,
            request_id=f"chaos-usage-{n}",
            model=CHAT_MODEL,
            prompt_tokens=20,
            completion_tokens=10,
            finish_reason="stop",
            created_at=time.time(),
        )
        self.record.usage_published.add(event.event_id)
        # One in four twice: the retry of a publisher that lost the first ack.
        for _ in range(2 if n % 4 == 0 else 1):
            await publish_until_acked(self.bus, self.record, event)

    # -- memory stores

    async def memory_store(self, outcome: Outcome) -> None:
        n = self.next("memory store")
        text = f"{self.memory_texts[n % len(self.memory_texts)]} (chaos {n})"
        request = MemoryStoreRequest(
            scope=MEMORY_SCOPE, memories=[MemoryInput(text=text, kind="fact")]
        )
        reply = await self.bus.request(subjects.MEMORY_STORE, request, MemoryStoreResponse, 20)
        self.record.memories.append((reply.stored[0].id, text))

    # -- the cost ledger's report

    async def cost_report(self, outcome: Outcome) -> None:
        await ledger_report(self.bus)


class WsChat:
    """One chat: a socket, `hello`, a message, its answer; resumed after a dropped socket."""

    def __init__(self, clients: Clients, outcome: Outcome, content: str) -> None:
        self.clients = clients
        self.outcome = outcome
        self.content = content
        self.session_id: str | None = None
        self.last_seq = 0
        self.run_id: str | None = None

    async def run(self) -> None:
        url = self.clients.platform.gateway_url.replace("http", "ws", 1) + "/v1/ws"
        while True:
            try:
                ws = await self.clients.http.ws_connect(url, headers=self.clients.auth)
            except (aiohttp.ClientConnectionError, aiohttp.WSServerHandshakeError) as exc:
                if self.run_id is None:
                    raise NotAccepted(f"connect: {exc}") from None
                await asyncio.sleep(1.0)  # resuming: the gateway is coming back
                continue
            async with ws:
                if await self._converse(ws):
                    return
            if self.run_id is None:
                raise Dropped("socket closed before the message was accepted")

    async def _converse(self, ws: aiohttp.ClientWebSocketResponse) -> bool:
        """True once answered; False when the socket closed first (to resume)."""
        hello: dict = {"type": "hello"}
        if self.session_id:
            hello |= {"session_id": self.session_id, "last_seq": self.last_seq}
        await ws.send_str(_encoder.encode(hello).decode())
        sent = self.run_id is not None  # resuming: the message is in the session already
        async for msg in ws:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                continue
            frame = _frame_decoder.decode(msg.data)
            if frame.type == "session":
                self.session_id = frame.session_id
                if not sent:
                    message = {"type": "message", "content": self.content, "agent": "brief"}
                    await ws.send_str(_encoder.encode(message).decode())
                    sent = True
            elif frame.type == "error":
                raise Typed(frame.code or "error", frame.message or "")
            elif frame.type == "item":
                self.last_seq = max(self.last_seq, frame.seq or 0)
                if self._answered(frame):
                    return True
        return False

    def _answered(self, frame: SessionFrame) -> bool:
        if frame.kind == "user" and self.run_id is None:
            self.run_id = frame.run_id
            self.clients.note_run(self.outcome, frame.run_id or "")
        if frame.run_id != self.run_id or self.run_id is None:
            return False
        if frame.kind == "assistant":
            return True
        event = frame.event or {}
        if event.get("type") in ("failed", "cancelled"):
            raise Typed(event.get("code") or event["type"], event.get("reason", ""))
        return False


class SessionFrame(Frame):
    """gateway.py's Frame, with what a resuming chat reads too."""

    seq: int | None = None
    session_id: str | None = None
    event: dict | None = None


_frame_decoder = msgspec.json.Decoder(SessionFrame)


def openai_error(status: int, body: bytes) -> Exception:
    """OpenAI's error shape is typed; anything else from the gateway is not."""
    try:
        error = msgspec.json.decode(body)["error"]
        return Typed(f"{status} {error['code']}", error.get("message", ""))
    except (msgspec.DecodeError, KeyError, TypeError):
        return Untyped(f"{status}: {body[:120]!r}")


async def read_sse(response: aiohttp.ClientResponse) -> None:
    """Until `data: [DONE]`; an error event is typed; a cut stream is dropped."""
    try:
        async for raw in response.content:
            line = raw.decode().strip()
            if line == "data: [DONE]":
                return
            if line.startswith("data: ") and line.startswith('data: {"error"'):
                raise openai_error(200, line.removeprefix("data: ").encode())
    except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError) as exc:
        raise Dropped(f"stream cut: {exc}") from None
    raise Dropped("stream ended without [DONE]")


def _reason(event: object) -> str:
    return str(getattr(event, "reason", ""))[:120]


async def submit_until_acked(bus: Bus, submit: RunSubmit, within: float = 30.0) -> None:
    """Submit, and again with the same ids (JetStream drops the repeat) while NATS is away;
    NotAccepted when it never was."""
    end = time.monotonic() + within
    while True:
        try:
            await submit_run(bus, submit)
            return
        except (NatsError, TimeoutError, BusUnavailable) as exc:
            if time.monotonic() >= end:
                raise NotAccepted(f"submit not acknowledged: {type(exc).__name__}") from None
            await asyncio.sleep(1.0)


async def publish_until_acked(
    bus: Bus, record: Record, event: UsageEvent, within: float = 60.0
) -> None:
    end = time.monotonic() + within
    while True:
        record.usage_publishes += 1
        try:
            await bus.js_publish(
                subjects.usage(USAGE_TENANT), event, msg_id=event.event_id, timeout=2.0
            )
            record.usage_acked.add(event.event_id)
            return
        except (NatsError, TimeoutError):
            if time.monotonic() >= end:
                raise
            await asyncio.sleep(1.0)


async def ledger_report(bus: Bus) -> CostReport:
    request = ReportRequest(tenant=USAGE_TENANT, top_runs=0)
    return await bus.request(subjects.LEDGER_REPORT, request, CostReport, 10)


# -- driving the load ------------------------------------------------------------------------


@dataclass(frozen=True)
class Kind:
    name: str
    interval_s: float
    in_flight: int
    deadline_s: float


KINDS = (
    Kind("ws chat", 10.0, 2, 120.0),
    Kind("openai", 8.0, 2, 120.0),
    Kind("tool run", 40.0, 2, 240.0),
    Kind("usage event", 0.5, 4, 90.0),
    Kind("memory store", 2.0, 2, 30.0),
    Kind("cost report", 5.0, 1, 15.0),
)


async def drive(clients: Clients, kind: Kind, stop: asyncio.Event) -> None:
    """`kind` every interval, at most `in_flight` at once (a tick waits for a slot), until
    `stop`; then waits for what is in flight."""
    one = getattr(clients, kind.name.replace(" ", "_"))
    gate = asyncio.Semaphore(kind.in_flight)
    tasks: set[asyncio.Task] = set()

    async def guarded() -> None:
        try:
            await attempt(clients.record, kind.name, kind.deadline_s, one)
        finally:
            gate.release()

    next_at = time.monotonic()
    while not stop.is_set():
        await gate.acquire()
        if stop.is_set():
            gate.release()
            break
        task = asyncio.create_task(guarded())
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        next_at = max(next_at + kind.interval_s, time.monotonic())
        with contextlib.suppress(TimeoutError):  # the next tick
            await asyncio.wait_for(stop.wait(), next_at - time.monotonic())
    await asyncio.gather(*tasks)


# -- killing -----------------------------------------------------------------------------------


@dataclass
class Recovery:
    process: str
    killed_at: float
    ready_s: float | None = None  # kill to the supervisor's `running` with a new pid
    restarts: int = 0
    last_exit: str = ""


async def kill_and_wait(platform: Platform, record: Record, name: str) -> Recovery:
    await mid_request(record, KILLED_MID[name])
    before = platform.record(name)
    os.kill(before["pid"], signal.SIGKILL)
    killed_at = time.monotonic()
    record.kills.append((name, killed_at))
    recovery = Recovery(name, killed_at)
    going = Counter(o.kind for o in record.in_flight)
    print(f"  kill -9 {name} (pid {before['pid']}), in flight: {dict(going)}", flush=True)
    end = killed_at + BACK_WITHIN_S
    while time.monotonic() < end:
        now = platform.record(name)
        if now["status"] == "running" and now["pid"] not in (0, before["pid"]):
            recovery.ready_s = time.monotonic() - killed_at
            recovery.restarts, recovery.last_exit = now["restarts"], now["last_exit"]
            break
        await asyncio.sleep(0.2)
    probe = PROBE[name]
    while time.monotonic() < end and first_ok(record, probe, killed_at) is None:  # noqa: ASYNC110
        await asyncio.sleep(0.5)  # outcomes are appended by the load's tasks
    back = f"{recovery.ready_s:.1f} s" if recovery.ready_s is not None else "NOT back"
    answered = first_ok(record, probe, killed_at)
    again = f"{answered:.1f} s" if answered is not None else "never"
    print(f"    ready again after {back}, {probe} answered again after {again}", flush=True)
    return recovery


async def mid_request(record: Record, kind: str) -> None:
    """Until a request of `kind` is in flight (with its run, for those that make one), at
    most MID_WAIT_S."""
    end = time.monotonic() + MID_WAIT_S
    makes_runs = kind in ("ws chat", "openai", "tool run")
    while time.monotonic() < end:  # the load's tasks change in_flight
        if any(o.kind == kind and (o.run_id or not makes_runs) for o in record.in_flight):
            return
        await asyncio.sleep(0.1)


def first_ok(record: Record, kind: str, since: float) -> float | None:
    """Seconds from `since` to the first success of `kind` among requests started after."""
    ends = [o.ended for o in record.outcomes if o.kind == kind and o.result == "ok"
            and o.started >= since]  # fmt: skip
    return min(ends) - since if ends else None


async def chaos(platform: Platform, record: Record, targets: tuple[str, ...]) -> list[Recovery]:
    recoveries = []
    for name in targets:
        recoveries.append(await kill_and_wait(platform, record, name))
        await asyncio.sleep(SETTLE_S)
    return recoveries


# -- the run -----------------------------------------------------------------------------------


@dataclass
class Window:
    name: str
    start: float
    end: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)
    cpu_others: float = 0.0
    cpu_stolen: float = 0.0

    @property
    def seconds(self) -> float:
        return self.end - self.start


@dataclass
class Result:
    up_s: float
    record: Record
    windows: list[Window]
    recoveries: list[Recovery]
    runs_lost: list[str] = field(default_factory=list)
    runs_checked: int = 0
    ledger_events: int = -1
    memories_lost: list[str] = field(default_factory=list)
    run_states: dict[str, str] = field(default_factory=dict)  # of failed requests' runs


async def bench(platform: Platform, args: argparse.Namespace, up_s: float) -> Result:
    creds = platform.operator_creds()
    key = platform.api_key()
    bus = await Bus.connect(platform.nats_url, "chaos-bench", credentials=creds)
    record = Record()
    texts = [text for _, text in generate(2000, seed=11)]
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as http:
            clients = Clients(bus, http, platform, key, record, texts)
            stop = asyncio.Event()
            drivers = [asyncio.create_task(drive(clients, kind, stop)) for kind in KINDS]
            print(f"warm-up {WARMUP_S:.0f} s...", flush=True)
            await asyncio.sleep(WARMUP_S)
            windows = []
            baseline = Window("baseline", time.monotonic())
            clock = CpuClock(platform)
            print(f"baseline {args.duration:.0f} s (no kills)...", flush=True)
            await asyncio.sleep(args.duration)
            close(baseline, clock)
            windows.append(baseline)
            under = Window("chaos", time.monotonic())
            clock = CpuClock(platform)
            print("chaos: each process killed in turn...", flush=True)
            recoveries = await chaos(platform, record, args.targets)
            if (left := args.duration - (time.monotonic() - under.start)) > 0:
                print(f"  load goes on {left:.0f} s (as long as the baseline)...", flush=True)
                await asyncio.sleep(left)
            close(under, clock)
            windows.append(under)
            print("load stopped; waiting for what is in flight...", flush=True)
            stop.set()
            await asyncio.gather(*drivers)
        result = Result(up_s, record, windows, recoveries)
        await check(bus, result)
        return result
    finally:
        await bus.close()


def close(window: Window, clock: CpuClock) -> None:
    window.end = time.monotonic()
    window.cpu, window.cpu_others, window.cpu_stolen = clock.read()


# -- the checks --------------------------------------------------------------------------------


async def check(bus: Bus, result: Result) -> None:
    record = result.record
    print("checking runs, usage, memories...", flush=True)
    result.runs_checked = len(record.run_ids)
    result.runs_lost = await lost_runs(bus, sorted(record.run_ids - {""}))
    result.ledger_events = await settled_ledger_count(bus, len(record.usage_acked))
    result.memories_lost = await lost_memories(bus, record.memories)
    for outcome in failures(result):
        if outcome.run_id:  # what became of the run the client got no outcome for
            result.run_states[outcome.run_id] = await run_state(bus, outcome.run_id)


async def lost_runs(bus: Bus, run_ids: list[str]) -> list[str]:
    """Runs without a terminal event in RUN_EVENTS or a terminal status in runs.api.get by
    the end of the drain (runs resumed after a kill may still be going)."""
    end = time.monotonic() + DRAIN_S
    pending = run_ids
    while True:
        pending = [r for r in pending if not await run_ended(bus, r)]
        if not pending or time.monotonic() >= end:
            return [f"{r}: {await run_state(bus, r)}" for r in pending]
        await asyncio.sleep(3.0)


async def run_ended(bus: Bus, run_id: str) -> bool:
    try:
        last = await bus.js.get_last_msg(RUN_EVENTS.name, subjects.runs_events(TENANT, run_id))
        detail = await bus.request(
            subjects.RUNS_GET, RunGetRequest(run_id=run_id, tenant=TENANT), RunDetail, 10
        )
    except (RevoError, NatsError, TimeoutError):
        return False
    stored_end = msgspec.json.decode(last.data).get("type") in ("finished", "failed", "cancelled")
    return stored_end and detail.run.status in ("finished", "failed", "cancelled")


async def run_state(bus: Bus, run_id: str) -> str:
    try:
        detail = await bus.request(
            subjects.RUNS_GET, RunGetRequest(run_id=run_id, tenant=TENANT), RunDetail, 10
        )
    except (RevoError, NatsError, TimeoutError) as exc:
        return f"runs.api.get: {exc}"
    return f"status {detail.run.status}, events {[event_type(e) for e in detail.events]}"


async def settled_ledger_count(bus: Bus, expected: int) -> int:
    """The ledger's event count for the usage tenant once it equals `expected` or has not
    moved for 20 s (the ledger works through its backlog after its restart)."""
    end = time.monotonic() + DRAIN_S
    last, still_since = -1, time.monotonic()
    while time.monotonic() < end:
        try:
            count = (await ledger_report(bus)).totals.events
        except (RevoError, NatsError, TimeoutError):
            count = last
        if count == expected:
            return count
        if count != last:
            last, still_since = count, time.monotonic()
        elif time.monotonic() - still_since > 20.0:
            return count
        await asyncio.sleep(2.0)
    return last


async def lost_memories(bus: Bus, memories: list[tuple[str, str]]) -> list[str]:
    lost = []
    for memory_id, text in memories:
        request = MemoryHistoryRequest(scope=MEMORY_SCOPE, id=memory_id)
        try:
            history = await bus.request(subjects.MEMORY_HISTORY, request, MemoryHistoryResponse, 10)
        except RevoError as exc:
            lost.append(f"{memory_id}: {exc}")
            continue
        if text not in {version.text for version in history.versions}:
            lost.append(f"{memory_id}: {text[:60]!r} not in its history")
    return lost


# -- the report --------------------------------------------------------------------------------

FAILURES = ("untyped", "hang")


def failures(result: Result) -> list[Outcome]:
    """Untyped failures and hangs; a dropped HTTP/WS request counts unless the gateway
    serving it was killed while it was in flight."""
    found = []
    for outcome in result.record.outcomes:
        cut_by_kill = result.record.killed_during(SERVED_OVER_HTTP_BY, outcome)
        if outcome.result.startswith(FAILURES) or (outcome.result == "dropped" and not cut_by_kill):
            found.append(outcome)
    return found


def broken(result: Result) -> list[str]:
    r = result.record
    problems = []
    if bad := failures(result):
        problems.append(f"{len(bad)} request(s) hung or failed untyped")
    if result.runs_lost:
        problems.append(f"{len(result.runs_lost)} run(s) lost")
    if result.ledger_events != len(r.usage_acked):
        problems.append(
            f"ledger counts {result.ledger_events} usage events for {len(r.usage_acked)} "
            "distinct events acknowledged"
        )
    if result.memories_lost:
        problems.append(f"{len(result.memories_lost)} acknowledged memories lost")
    if leaks := [o for o in r.outcomes if o.leaks_exception]:
        problems.append(f"{len(leaks)} error(s) with Python exception text in their message")
    if any(rec.ready_s is None for rec in result.recoveries):
        problems.append("a killed process was not back")
    return problems


def in_window(outcomes: list[Outcome], window: Window) -> list[Outcome]:
    return [o for o in outcomes if window.start <= o.started < window.end]


def report(result: Result, args: argparse.Namespace) -> None:
    r = result.record
    print(f"\n{machine_line()}")
    print(f"revo up ready in {result.up_s:.0f} s; {len(KINDS)} kinds of load:")
    for kind in KINDS:
        print(f"  {kind.name:<13} every {kind.interval_s:g} s, at most {kind.in_flight} in "
              f"flight, deadline {kind.deadline_s:.0f} s")  # fmt: skip
    report_outcomes(r)
    report_throughput(r, result.windows)
    report_recovery(result)
    report_cpu(result.windows)
    report_invariants(result)


def report_outcomes(r: Record) -> None:
    print("\noutcomes, all phases (warm-up and drain included):")
    by_kind: dict[str, Counter] = defaultdict(Counter)
    for outcome in r.outcomes:
        by_kind[outcome.kind][outcome.result] += 1
    for kind in KINDS:
        counts = by_kind[kind.name]
        parts = ", ".join(f"{result} {n}" for result, n in sorted(counts.items()))
        print(f"  {kind.name:<13} {sum(counts.values()):5d}: {parts}")
    examples = {(o.kind, o.result): o.detail for o in reversed(r.outcomes) if o.result != "ok"}
    for (kind, result), detail in sorted(examples.items()):
        print(f"    e.g. {kind}, {result}: {one_line(detail)[:110]}")
    cut = [o for o in r.outcomes if o.result == "dropped"]
    if cut:
        print(f"  ({len(cut)} dropped: their HTTP/WebSocket connection was cut by the gateway's "
              "kill, which nothing can answer; their runs are checked below)")  # fmt: skip


def report_throughput(r: Record, windows: list[Window]) -> None:
    base, under = windows
    print(f"\nthroughput (successes/s) and latency of successes, baseline {base.seconds:.0f} s "
          f"vs chaos {under.seconds:.0f} s:")  # fmt: skip
    print(f"  {'':<13} {'base/s':>8} {'p50 s':>7} {'p95 s':>7} {'chaos/s':>8} {'p50 s':>7} "
          f"{'p95 s':>7} {'ratio':>6} {'not ok':>7}")  # fmt: skip
    for kind in KINDS:
        cells, rates = [], []
        for window in windows:
            mine = [o for o in in_window(r.outcomes, window) if o.kind == kind.name]
            ok = [o.seconds for o in mine if o.result == "ok"]
            rates.append(len(ok) / window.seconds)
            cells.append(f"{rates[-1]:8.3f} {pct(ok, 0.5):7.2f} {pct(ok, 0.95):7.2f}")
        not_ok = sum(1 for o in in_window(r.outcomes, under) if o.kind == kind.name
                     and o.result != "ok")  # fmt: skip
        ratio = rates[1] / rates[0] if rates[0] else 0.0
        print(f"  {kind.name:<13} {cells[0]} {cells[1]} {ratio:6.2f} {not_ok:7d}")


def report_recovery(result: Result) -> None:
    r = result.record
    kinds = [kind.name for kind in KINDS]
    print("\nrecovery after kill -9, seconds: to ready again (supervisor), then to the first "
          "success of each kind started after the kill:")  # fmt: skip
    print(f"  {'':<13} {'ready':>6} " + " ".join(f"{k[:11]:>11}" for k in kinds) + "  restarts")
    for rec in result.recoveries:
        ready = f"{rec.ready_s:6.1f}" if rec.ready_s is not None else "  NONE"
        firsts = [first_ok(r, k, rec.killed_at) for k in kinds]
        cells = " ".join(f"{f:11.1f}" if f is not None else f"{'-':>11}" for f in firsts)
        print(f"  {rec.process:<13} {ready} {cells}  {rec.restarts} ({rec.last_exit})")


def report_cpu(windows: list[Window]) -> None:
    print("\nCPU seconds by process group (% of one core) in each window; a killed process's "
          "CPU before its kill is not counted:")  # fmt: skip
    names = list(windows[0].cpu)
    print(f"  {'':<18}" + "".join(f"{w.name:>16}" for w in windows))
    rows = [(n, [w.cpu.get(n, 0.0) for w in windows]) for n in names]
    rows.append(("other processes", [w.cpu_others for w in windows]))
    rows.append(("stolen", [w.cpu_stolen for w in windows]))
    for name, values in rows:
        cells = "".join(
            f"{v:>9.1f} s {v / w.seconds * 100:>3.0f}%"
            for v, w in zip(values, windows, strict=True)
        )
        print(f"  {name:<18}{cells}")


def report_invariants(result: Result) -> None:
    r = result.record
    bad = failures(result)
    print("\ninvariants:")
    accepted = sum(1 for o in r.outcomes if o.accepted)
    print(f"  every accepted request answered or failed typed: {accepted} accepted, "
          f"{len(bad)} hung or untyped -> {verdict(not bad)}")  # fmt: skip
    for outcome in bad[:15]:
        print(f"    {outcome.kind}: {outcome.result} after {outcome.seconds:.1f} s "
              f"({r.after_kill(outcome)}): {one_line(outcome.detail)}")  # fmt: skip
        if outcome.run_id:
            print(f"      its run {outcome.run_id}: {result.run_states.get(outcome.run_id)}")
    leaks = [o for o in r.outcomes if o.leaks_exception]
    print(f"  no exception text in an error's message: {len(leaks)} with it -> "
          f"{verdict(not leaks)}")  # fmt: skip
    for kind, said, when in sorted({(o.kind, one_line(o.platform_said)[:110], r.after_kill(o))
                                    for o in leaks})[:8]:  # fmt: skip
        print(f"    {kind} ({when}): {said}")
    print(f"  0 runs lost: {result.runs_checked} runs checked, {len(result.runs_lost)} without "
          f"a terminal event -> {verdict(not result.runs_lost)}")  # fmt: skip
    for lost in result.runs_lost[:10]:
        print(f"    {lost}")
    twice = r.usage_publishes - len(r.usage_acked)
    print(f"  0 usage events charged twice: {len(r.usage_acked)} distinct events acknowledged "
          f"({r.usage_publishes} publishes, {twice} of them repeats on purpose or after a "
          f"failure), the ledger counts {result.ledger_events} -> "
          f"{verdict(result.ledger_events == len(r.usage_acked))}")  # fmt: skip
    lost = len(result.memories_lost)
    print(f"  0 memories lost: {len(r.memories)} stores acknowledged, {lost} not found -> "
          f"{verdict(not lost)}")  # fmt: skip
    for lost in result.memories_lost[:10]:
        print(f"    {lost}")


def one_line(text: str) -> str:
    return " ".join(text.split())


def verdict(ok: bool) -> str:
    return "held" if ok else "BROKEN"


# -- main --------------------------------------------------------------------------------------


def main(args: argparse.Namespace) -> int:
    # SIGTERM (a killed `make bench`) must still take the platform down.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    configure_logging("bench", level="ERROR", json=False)
    platform = Platform()
    try:
        print(f"revo up in {platform.state_dir}...", flush=True)
        up_s = platform.up()
        result = asyncio.run(bench(platform, args, up_s))
        report(result, args)
        problems = broken(result)
        if problems:
            print("\nBROKEN: " + "; ".join(problems))
            print(f"logs: revo logs <service> with REVO_STATE_DIR={platform.state_dir}")
            if args.keep:
                return 1
        return 1 if problems else 0
    finally:
        if not args.keep:
            platform.down()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=120.0, help="baseline seconds")
    parser.add_argument("--quick", action="store_true", help="30 s baseline, inference spared")
    parser.add_argument(
        "--keep", action="store_true", help="leave the platform running to read its logs"
    )
    arguments = parser.parse_args()
    arguments.targets = KILL_ORDER
    if arguments.quick:
        arguments.duration = 30.0
        arguments.targets = tuple(n for n in KILL_ORDER if n != "inference")
    sys.exit(main(arguments))
