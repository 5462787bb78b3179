"""Where the CPU of storing a memory goes: core-milliseconds per text in each process
(inference, Postgres, the memory service, NATS, this client), storing 2,000 generated
memories into an empty store, beside embedding the same texts alone (the baseline, same run).

On 2 cores, N memories/s can afford at most 2,000 / N core-ms per text in all: the sum
printed here says which rate the machine allows and which process to make cheaper.

    .venv/bin/python bench/memory_cpu.py [--texts 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable, Callable

import memory as memory_bench
import psutil  # comes with pgserver (embedded Postgres)
from runs import CpuClock

from revo_core.bus import Bus


async def measure(
    world: memory_bench.World, label: str, texts: int, work: Callable[[], Awaitable[object]]
) -> float:
    clock, started = CpuClock(world), time.perf_counter()
    await work()
    wall, cost = time.perf_counter() - started, memory_bench.cpu_cost(clock, texts)
    print(f"  {label:<22} {texts / wall:6.0f}/s   {memory_bench.cpu_line(cost)}")
    return memory_bench.cpu_total(cost)


async def bench(world: memory_bench.World, count: int) -> None:
    world.start_memory()
    bus = await Bus.connect(world.nats.url, name="bench-memory-cpu")
    try:
        texts = [text for _, text in memory_bench.generate(count, seed=5)]
        print(f"{count:,} texts, {psutil.cpu_count()} cores:")
        alone = await measure(
            world,
            "inference.embed alone",
            count,
            lambda: memory_bench.embed_rate(bus, [t + " (baseline)" for t in texts]),
        )
        stored = await measure(
            world, "memory.store, empty", count, lambda: memory_bench.store_rate(bus, texts, "cpu")
        )
        print(f"  store / embed alone, CPU per text: {stored / alone:.2f}x")
    finally:
        await bus.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--texts", type=int, default=2_000)
    args = parser.parse_args()
    world = memory_bench.World().start()
    try:
        asyncio.run(bench(world, args.texts))
    finally:
        world.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
