"""What NATS authentication and per-identity permissions cost (issue 14), against the same
traffic on a nats-server without them, in the same run.

Two nats-servers in a scratch directory: one trusting a revo authority (JWT credentials,
every service's allow-lists), one open. On each: a responder as the `memory` identity
answering `memory.recall` and a caller as the `agent-runner` identity (their real
permissions), then
- request/reply round trips one at a time (p50/p99),
- publishes of 200-byte messages to a subject the caller may publish (`memory.recall`),
  as fast as one connection goes (messages/s, flushed),
- connect + close of one client.
Prints each figure with its ratio to the open server's.

    python bench/bus_auth.py [--requests 3000] [--publishes 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import nats
from machine import machine_line

from revo_contracts.bus_identities import AGENT_RUNNER, MEMORY, inbox_prefix
from revo_core.bus_authority import BusAuthority
from revo_core.embedded.nats_server import NatsServer

SUBJECT = "memory.recall"
PAYLOAD = b"x" * 200


async def client(server: NatsServer, identity: str) -> nats.NATS:
    if server.authority is None:
        return await nats.connect(server.url)
    return await nats.connect(
        server.url,
        user_credentials=str(server.creds(identity)),
        inbox_prefix=inbox_prefix(identity),
    )


async def round_trips(server: NatsServer, count: int) -> list[float]:
    responder, caller = await client(server, MEMORY), await client(server, AGENT_RUNNER)

    async def answer(msg) -> None:
        await msg.respond(msg.data)

    await responder.subscribe(SUBJECT, cb=answer)
    await responder.flush()
    times = []
    for _ in range(count):
        started = time.perf_counter()
        await caller.request(SUBJECT, PAYLOAD, timeout=5)
        times.append(time.perf_counter() - started)
    await caller.close()
    await responder.close()
    return times


async def publish_rate(server: NatsServer, count: int) -> float:
    caller = await client(server, AGENT_RUNNER)
    started = time.perf_counter()
    for _ in range(count):
        await caller.publish(SUBJECT, PAYLOAD)
    await caller.flush()
    rate = count / (time.perf_counter() - started)
    await caller.close()
    return rate


async def connect_time(server: NatsServer, count: int = 50) -> float:
    started = time.perf_counter()
    for _ in range(count):
        await (await client(server, AGENT_RUNNER)).close()
    return (time.perf_counter() - started) / count


def pct(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))]


async def measure(server: NatsServer, args: argparse.Namespace) -> dict[str, float]:
    await round_trips(server, 200)  # warm-up
    times = await round_trips(server, args.requests)
    return {
        "request p50 ms": statistics.median(times) * 1000,
        "request p99 ms": pct(times, 0.99) * 1000,
        "publishes/s": await publish_rate(server, args.publishes),
        "connect+close ms": await connect_time(server) * 1000,
    }


async def bench(args: argparse.Namespace) -> None:
    base = Path(tempfile.mkdtemp(prefix="revo-bench-auth-"))
    guarded = NatsServer(
        base / "guarded", authority=BusAuthority.load_or_create(base / "auth")
    ).start()
    open_server = NatsServer(base / "open").start()
    try:
        # Interleaved twice, so a noisy neighbour hits both sides alike.
        results: dict[str, list[dict[str, float]]] = {"guarded": [], "open": []}
        for _ in range(2):
            results["open"].append(await measure(open_server, args))
            results["guarded"].append(await measure(guarded, args))
    finally:
        guarded.stop()
        open_server.stop()
    print(machine_line())
    print(f"{'':<18} {'credentials+permissions':>24} {'open server':>12} {'ratio':>6}")
    for name in results["open"][0]:
        guarded_value = statistics.median(r[name] for r in results["guarded"])
        open_value = statistics.median(r[name] for r in results["open"])
        ratio = guarded_value / open_value
        print(f"{name:<18} {guarded_value:>24.2f} {open_value:>12.2f} {ratio:>6.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--publishes", type=int, default=100_000)
    asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    main()
