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
from pathlib import Path

import psutil  # comes with pgserver (embedded Postgres)

sys.path.insert(0, str(Path(__file__).parent))
import memory as memory_bench

from revo_core.bus import Bus

GROUPS = (("memory", "revo_memory"), ("inference", "revo_inference"), ("nats", "nats-server"))


def cpu_seconds_by_process() -> dict[str, float]:
    totals: dict[str, float] = {}
    me = psutil.Process().pid
    for process in psutil.process_iter(["pid", "name", "cmdline", "cpu_times"]):
        group = _group(process.info)
        times = process.info["cpu_times"]
        if group is not None and times is not None:
            totals[group] = totals.get(group, 0.0) + times.user + times.system
        if process.info["pid"] == me and times is not None:
            totals["client"] = times.user + times.system
    return totals


def _group(info: dict) -> str | None:
    command = " ".join(info["cmdline"] or [])
    if (info["name"] or "").startswith("postgres"):
        return "postgres"
    return next((name for name, needle in GROUPS if needle in command), None)


async def measure(label: str, texts: int, work: Callable[[], Awaitable[object]]) -> float:
    before, started = cpu_seconds_by_process(), time.perf_counter()
    await work()
    wall, after = time.perf_counter() - started, cpu_seconds_by_process()
    per_text = {g: (after[g] - before.get(g, 0.0)) * 1000 / texts for g in after}
    parts = "  ".join(f"{g} {ms:.2f}" for g, ms in sorted(per_text.items()) if ms >= 0.005)
    total = sum(per_text.values())
    print(f"  {label:<22} {texts / wall:6.0f}/s   core-ms per text: {parts}   all {total:.2f}")
    return total


async def bench(world: memory_bench.World, count: int) -> None:
    world.start_memory()
    bus = await Bus.connect(world.nats.url, name="bench-memory-cpu")
    try:
        texts = [text for _, text in memory_bench.generate(count, seed=5)]
        print(f"{count:,} texts, {psutil.cpu_count()} cores:")
        alone = await measure(
            "inference.embed alone",
            count,
            lambda: memory_bench.embed_rate(bus, [t + " (baseline)" for t in texts]),
        )
        stored = await measure(
            "memory.store, empty", count, lambda: memory_bench.store_rate(bus, texts, "cpu")
        )
        cores = psutil.cpu_count() or 1
        print(f"  store / embed alone, CPU per text: {stored / alone:.2f}x; at most "
              f"{cores * 1000 / stored:.0f} stores/s on {cores} cores")  # fmt: skip
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
