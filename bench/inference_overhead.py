"""What does serving through NATS cost, versus calling the same vLLM engine directly?

One process, one AsyncLLM (the embedded model). The same prompts run at 1, 8 and 32
concurrent streams, alternately direct (`engine.generate`) and through revo's path
(caller -> NATS -> inference handler -> engine -> NATS chunks -> caller). Prints token
throughput of both and their ratio, the time-to-first-token each adds (p50, p99), and the
admission delay each adds: from the caller's send to the engine receiving the request.
Targets: ratio >= 0.97 at 8 and 32 streams; TTFT added <= 2 ms p50, <= 5 ms p99.

On CPU a batch of concurrent requests gets its first tokens after one shared prefill step
of 0.2-1 s whose make-up depends on which requests arrived before the step began, so at 8
and 32 streams the TTFT percentiles move by a step either way from round to round; the
admission delay is the part of TTFT that the NATS path itself adds.

    python bench/inference_overhead.py [--rounds 5] [--max-tokens 64]
"""

from __future__ import annotations

import os

# Keep vLLM's own INFO chatter out of the figures (set before vLLM is imported).
os.environ.setdefault("VLLM_CONFIGURE_LOGGING", "0")

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
        self.admission: list[float] = []
        self.tokens = 0
        self.seconds = 0.0

    def merge(self, other: Sample) -> None:
        self.ttft += other.ttft
        self.admission += other.admission
        self.tokens += other.tokens
        self.seconds += other.seconds


class AdmissionClock(LocalChatEngine):
    """The engine, noting when each request reaches it (measurement, not a double)."""

    def __init__(self, inner: LocalChatEngine) -> None:
        super().__init__(inner.spec, inner._engine)
        self.sent: dict[str, float] = {}
        self.samples: dict[str, Sample] = {}

    def generate(self, request_id, prompt_ids, params):
        sample = self.samples.pop(request_id, None)
        if sample is not None:
            sample.admission.append(time.perf_counter() - self.sent.pop(request_id))
        return super().generate(request_id, prompt_ids, params)

    def expect(self, request_id: str, sample: Sample) -> None:
        self.sent[request_id] = time.perf_counter()
        self.samples[request_id] = sample


async def direct_one(engine: AdmissionClock, request: ChatRequest, sample: Sample) -> None:
    # The clock starts before the chat template, as it does for the NATS path.
    engine.expect(request.request_id, sample)
    started = time.perf_counter()
    prompt_ids = engine.render_prompt(prompts.engine_messages(request))
    params = prompts.sampling_params(request)
    first = None
    tokens = 0
    async with aclosing(engine.generate(request.request_id, prompt_ids, params)) as outputs:
        async for output in outputs:
            if first is None and output.outputs[0].token_ids:
                first = time.perf_counter() - started
            tokens += len(output.outputs[0].token_ids)
    sample.ttft.append(first or 0.0)
    sample.tokens += tokens


async def nats_one(bus: Bus, engine: AdmissionClock, request: ChatRequest, sample: Sample) -> None:
    engine.expect(request.request_id, sample)
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
    """Rounds of one direct batch and one NATS batch back to back, the order alternating so
    that drift of the shared machine falls on both; the ratio is the median of the rounds'."""
    direct, via_nats = Sample(), Sample()
    round_ratios = []
    # Sequential requests at concurrency 1 so TTFT has enough samples to rank.
    repeats = 4 if concurrency == 1 else 1

    def run_direct(sample: Sample):
        return batch(lambda r, s: direct_one(engine, r, s), concurrency, max_tokens, sample)

    def run_nats(sample: Sample):
        return batch(lambda r, s: nats_one(bus, engine, r, s), concurrency, max_tokens, sample)

    for index in range(rounds):
        one_direct, one_nats = Sample(), Sample()
        for _ in range(repeats):
            order = (run_direct, run_nats) if index % 2 == 0 else (run_nats, run_direct)
            for run in order:
                await run(one_direct if run is run_direct else one_nats)
        round_ratios.append(
            (one_nats.tokens / one_nats.seconds) / (one_direct.tokens / one_direct.seconds)
        )
        for total, one in ((direct, one_direct), (via_nats, one_nats)):
            total.merge(one)
    return {
        "concurrency": concurrency,
        "ratio": statistics.median(round_ratios),
        "direct_tok_s": direct.tokens / direct.seconds,
        "nats_tok_s": via_nats.tokens / via_nats.seconds,
        "ttft_direct_p50": pct(direct.ttft, 0.5),
        "ttft_nats_p50": pct(via_nats.ttft, 0.5),
        "ttft_direct_p99": pct(direct.ttft, 0.99),
        "ttft_nats_p99": pct(via_nats.ttft, 0.99),
        "admit_direct_p50": pct(direct.admission, 0.5),
        "admit_nats_p50": pct(via_nats.admission, 0.5),
        "admit_direct_p99": pct(direct.admission, 0.99),
        "admit_nats_p99": pct(via_nats.admission, 0.99),
        "samples": len(direct.ttft),
    }


def added_ms(row: dict, metric: str, q: str) -> float:
    return (row[f"{metric}_nats_{q}"] - row[f"{metric}_direct_{q}"]) * 1000


def report(row: dict) -> None:
    ratio = row["ratio"]
    print(
        f"{row['concurrency']:>5} | {row['direct_tok_s']:>9.1f} | {row['nats_tok_s']:>9.1f} | "
        f"{ratio:>6.3f} | {row['ttft_direct_p50'] * 1000:>8.1f} | "
        f"{added_ms(row, 'ttft', 'p50'):>+8.2f} | {row['ttft_direct_p99'] * 1000:>8.1f} | "
        f"{added_ms(row, 'ttft', 'p99'):>+8.2f} | {added_ms(row, 'admit', 'p50'):>+8.2f} | "
        f"{added_ms(row, 'admit', 'p99'):>+8.2f} | {row['samples']:>4}",
        flush=True,
    )


async def main(args: argparse.Namespace) -> None:
    configure_logging("bench", level="WARNING", json=False)
    spec = next(m for m in load_models_config(DEFAULT_MODELS_FILE).models if m.kind == "chat")
    engine = AdmissionClock(LocalChatEngine.load(spec, resolve_model_path(spec)))
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
        print(" TTFT p99 | added ms | admit+50 | admit+99 |  n")
        rows = []
        for concurrency in (1, 8, 32):
            row = await measure(engine, client_bus, concurrency, args.rounds, args.max_tokens)
            rows.append(row)
            report(row)
        ratios = [r["ratio"] for r in rows if r["concurrency"] >= 8]
        print(
            f"\nthroughput ratio NATS/direct (median of rounds) at 8 and 32 streams: "
            f"{', '.join(f'{x:.3f}' for x in ratios)} (target >= 0.97)"
        )
        print(
            "TTFT added at 1 stream: p50 {:+.2f} ms, p99 {:+.2f} ms (target <= 2 / 5 ms)".format(
                added_ms(rows[0], "ttft", "p50"), added_ms(rows[0], "ttft", "p99")
            )
        )
    finally:
        await endpoints.stop(grace=5)
        await client_bus.close()
        await server_bus.close()
        engine.shutdown()
        nats.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=64)
    asyncio.run(main(parser.parse_args()))
