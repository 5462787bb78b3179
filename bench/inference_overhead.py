"""What does serving through NATS cost, versus calling the same vLLM engine directly?

One process, one AsyncLLM (the embedded model). The same prompts run at 1, 8 and 32
concurrent streams, alternately direct (`engine.generate`) and through revo's path
(caller -> NATS -> inference handler -> engine -> NATS chunks -> caller). Prints token
throughput of both and their ratio, and the time-to-first-token each adds (p50, p99).
Targets: ratio >= 0.97 at 8 and 32 streams; TTFT added <= 2 ms p50, <= 5 ms p99.

    python bench/inference_overhead.py [--rounds 3] [--max-tokens 64]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from contextlib import aclosing
from pathlib import Path

from revo_contracts import subjects
from revo_contracts.inference import ChatChunk, ChatMessage, ChatRequest
from revo_core.bus import Bus
from revo_core.embedded.nats_server import NatsServer
from revo_core.endpoints import Endpoints
from revo_core.jetstream import ensure_streams
from revo_core.logging import configure_logging
from revo_core.streaming import stream_request
from revo_inference import prompts
from revo_inference.app import resolve_model_path
from revo_inference.config import DEFAULT_MODELS_FILE, load_models_config
from revo_inference.engine import LocalChatEngine
from revo_inference.handlers import InferenceHandlers
from revo_inference.registry import ModelRegistry
from revo_inference.usage import UsagePublisher

TOPICS = ["rivers", "compilers", "bees", "volcanoes", "chess", "bread", "comets", "jazz"]


def make_request(i: int, max_tokens: int) -> ChatRequest:
    topic = TOPICS[i % len(TOPICS)]
    return ChatRequest(
        messages=[ChatMessage(role="user", content=f"Tell me three facts about {topic}.")],
        tenant="bench",
        request_id=f"bench-{uuid.uuid4().hex}",
        max_tokens=max_tokens,
        temperature=0.0,
    )


class Sample:
    def __init__(self) -> None:
        self.ttft: list[float] = []
        self.tokens = 0
        self.seconds = 0.0


async def direct_one(engine: LocalChatEngine, request: ChatRequest, sample: Sample) -> None:
    prompt_ids = engine.render_prompt(prompts.engine_messages(request))
    params = prompts.sampling_params(request)
    started = time.perf_counter()
    first = None
    tokens = 0
    async with aclosing(engine.generate(request.request_id, prompt_ids, params)) as outputs:
        async for output in outputs:
            if first is None and output.outputs[0].token_ids:
                first = time.perf_counter() - started
            tokens += len(output.outputs[0].token_ids)
    sample.ttft.append(first or 0.0)
    sample.tokens += tokens


async def nats_one(bus: Bus, request: ChatRequest, sample: Sample) -> None:
    started = time.perf_counter()
    first = None
    async with stream_request(bus, subjects.INFERENCE_CHAT, request, ChatChunk) as chunks:
        async for chunk in chunks:
            if first is None and chunk.delta:
                first = time.perf_counter() - started
            if chunk.usage is not None:
                sample.tokens += chunk.usage.completion_tokens
    sample.ttft.append(first or 0.0)


async def batch(run_one, concurrency: int, max_tokens: int, sample: Sample) -> None:
    requests = [make_request(i, max_tokens) for i in range(concurrency)]
    started = time.perf_counter()
    await asyncio.gather(*(run_one(r, sample) for r in requests))
    sample.seconds += time.perf_counter() - started


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def measure(engine, bus, concurrency: int, rounds: int, max_tokens: int) -> dict:
    direct, via_nats = Sample(), Sample()
    # Sequential requests at concurrency 1 so TTFT has enough samples to rank.
    repeats = 10 if concurrency == 1 else 1
    for _ in range(rounds):
        for _ in range(repeats):
            await batch(lambda r, s: direct_one(engine, r, s), concurrency, max_tokens, direct)
            await batch(lambda r, s: nats_one(bus, r, s), concurrency, max_tokens, via_nats)
    return {
        "concurrency": concurrency,
        "direct_tok_s": direct.tokens / direct.seconds,
        "nats_tok_s": via_nats.tokens / via_nats.seconds,
        "ttft_direct_p50": pct(direct.ttft, 0.5),
        "ttft_nats_p50": pct(via_nats.ttft, 0.5),
        "ttft_direct_p99": pct(direct.ttft, 0.99),
        "ttft_nats_p99": pct(via_nats.ttft, 0.99),
        "samples": len(direct.ttft),
    }


def report(row: dict) -> None:
    ratio = row["nats_tok_s"] / row["direct_tok_s"]
    added50 = (row["ttft_nats_p50"] - row["ttft_direct_p50"]) * 1000
    added99 = (row["ttft_nats_p99"] - row["ttft_direct_p99"]) * 1000
    print(
        f"{row['concurrency']:>5} | {row['direct_tok_s']:>9.1f} | {row['nats_tok_s']:>9.1f} | "
        f"{ratio:>6.3f} | {row['ttft_direct_p50'] * 1000:>8.1f} | {added50:>+8.2f} | "
        f"{row['ttft_direct_p99'] * 1000:>8.1f} | {added99:>+8.2f} | {row['samples']:>4}",
        flush=True,
    )


async def main(args: argparse.Namespace) -> None:
    configure_logging("bench", level="WARNING", json=False)
    spec = next(m for m in load_models_config(DEFAULT_MODELS_FILE).models if m.kind == "chat")
    engine = LocalChatEngine.load(spec, resolve_model_path(spec))
    nats = NatsServer(Path(tempfile.mkdtemp(prefix="revo-bench-"))).start()
    server_bus = await Bus.connect(nats.url, "bench-server")
    client_bus = await Bus.connect(nats.url, "bench-client")
    await ensure_streams(server_bus.js)
    registry = ModelRegistry()
    registry.add_chat(engine)
    handlers = InferenceHandlers(registry, UsagePublisher(server_bus))
    endpoints = Endpoints(server_bus, "inference")
    await endpoints.start()
    await endpoints.add_stream("chat", subjects.INFERENCE_CHAT, ChatRequest, handlers.chat)
    try:
        await measure(engine, client_bus, 4, 1, 8)  # warm-up: first calls pay one-off costs
        print(f"\nmax_tokens={args.max_tokens}, rounds={args.rounds}, same engine, same run")
        print("conc. | direct t/s |  NATS t/s | ratio  | TTFT p50 | added ms |", end="")
        print(" TTFT p99 | added ms |  n")
        rows = []
        for concurrency in (1, 8, 32):
            row = await measure(engine, client_bus, concurrency, args.rounds, args.max_tokens)
            rows.append(row)
            report(row)
        ratios = [r["nats_tok_s"] / r["direct_tok_s"] for r in rows if r["concurrency"] >= 8]
        print(
            f"\nthroughput ratio NATS/direct at 8 and 32 streams: "
            f"{', '.join(f'{x:.3f}' for x in ratios)} (target >= 0.97)"
        )
        median = statistics.median(r["nats_tok_s"] / r["direct_tok_s"] for r in rows)
        print(f"median ratio over all rows: {median:.3f}")
    finally:
        await endpoints.stop(grace=5)
        await client_bus.close()
        await server_bus.close()
        engine.shutdown()
        nats.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=64)
    asyncio.run(main(parser.parse_args()))
