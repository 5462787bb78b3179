"""The local-first router under a mixed workload, and what it adds over the bare engine.

One process: the embedded model in one AsyncLLM, the inference handlers with the router
behind NATS, two cloud providers played by a scripted OpenAI-compatible HTTP server
(`revo_core.testing.openai_server`), and a scripted ledger that grants every hold (the
router's reserve/settle round trips are real NATS requests; the ledger's own latency is
bench/ledger.py's business).

1. Mixed workload: `--requests` chat requests at `--concurrency`; one in `--long-every`
   has a prompt beyond the local context, so it must spill (`context_exceeded`); the
   others should stay local. Prints the local share (target >= 95% when the local engine
   keeps up) and the routes by reason.
2. Added latency: the same short prompts, one at a time, alternately straight into
   `engine.generate` and through NATS + router + engine; prints TTFT p50/p99 of both and
   the difference, and the router's own decision time (route + context check).

    python bench/routing.py [--requests 200] [--concurrency 8] [--long-every 40]
"""

from __future__ import annotations

import os

os.environ.setdefault("VLLM_CONFIGURE_LOGGING", "0")

import argparse
import asyncio
import collections
import statistics
import tempfile
import time
import uuid
from contextlib import aclosing
from pathlib import Path

import aiohttp
import msgspec

from revo_contracts import subjects
from revo_contracts.inference import ChatChunk, ChatMessage, ChatRequest
from revo_contracts.ledger import Reservation, ReserveRequest, Settlement, SettleRequest
from revo_core.bus import Bus
from revo_core.codec import decode, encode
from revo_core.embedded.nats_server import NatsServer
from revo_core.endpoints import Endpoints
from revo_core.jetstream import ensure_streams
from revo_core.logging import configure_logging
from revo_core.streaming import stream_request
from revo_core.testing.openai_server import OpenAIServer
from revo_inference import prompts
from revo_inference.app import resolve_model_path
from revo_inference.cloud import CloudCaller
from revo_inference.config import (
    DEFAULT_MODELS_FILE,
    CloudModelSpec,
    ProviderSpec,
    RoutingSpec,
    TenantPolicy,
    load_models_config,
)
from revo_inference.engine import LocalChatEngine
from revo_inference.handlers import InferenceHandlers
from revo_inference.providers import CloudProvider
from revo_inference.registry import ModelRegistry
from revo_inference.router import Router
from revo_inference.usage import UsagePublisher

TOPICS = ["rivers", "compilers", "bees", "volcanoes", "chess", "bread", "comets", "jazz"]


def make_request(i: int, max_tokens: int, long: bool = False) -> ChatRequest:
    text = "word " * 2100 if long else f"Tell me three facts about {TOPICS[i % len(TOPICS)]}."
    return ChatRequest(
        messages=[ChatMessage(role="user", content=text)],
        tenant="bench",
        request_id=f"bench-{uuid.uuid4().hex}",
        max_tokens=max_tokens,
        temperature=0.0,
    )


async def scripted_ledger(bus: Bus) -> None:
    """Grants every hold at once."""

    async def reserve(msg) -> None:
        hold = decode(msg.data, ReserveRequest)
        granted = Reservation(
            reservation_id=hold.reservation_id or uuid.uuid4().hex,
            tenant=hold.tenant,
            amount_micros=1,
            expires_at=time.time() + 300,
        )
        await msg.respond(encode(granted))

    async def settle(msg) -> None:
        done = decode(msg.data, SettleRequest)
        await msg.respond(
            encode(
                Settlement(reservation_id=done.reservation_id, status="settled", amount_micros=0)
            )
        )

    await bus.nc.subscribe(subjects.LEDGER_RESERVE, cb=reserve)
    await bus.nc.subscribe(subjects.LEDGER_SETTLE, cb=settle)


async def via_router(bus: Bus, request: ChatRequest) -> tuple[float, str]:
    """(TTFT, provider of the answer)."""
    started = time.perf_counter()
    first, provider = None, "?"
    async with stream_request(bus, subjects.INFERENCE_CHAT, request, ChatChunk) as chunks:
        async for chunk in chunks:
            if first is None and chunk.delta:
                first = time.perf_counter() - started
            provider = chunk.provider
    return first or 0.0, provider


async def direct(engine: LocalChatEngine, request: ChatRequest) -> float:
    started = time.perf_counter()
    prompt_ids = engine.render_prompt(prompts.engine_messages(request))
    params = prompts.sampling_params(request)
    async with aclosing(engine.generate(request.request_id, prompt_ids, params)) as outputs:
        async for output in outputs:
            if output.outputs[0].token_ids:
                return time.perf_counter() - started
    return 0.0


async def mixed_workload(bus: Bus, args: argparse.Namespace) -> None:
    routes: collections.Counter[str] = collections.Counter()
    queue = asyncio.Queue()
    for i in range(args.requests):
        queue.put_nowait(make_request(i, args.max_tokens, long=(i + 1) % args.long_every == 0))

    async def worker() -> None:
        while not queue.empty():
            _, provider = await via_router(bus, queue.get_nowait())
            routes[provider] += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(args.concurrency)))
    elapsed = time.perf_counter() - started
    local = routes["local"]
    print(
        f"mixed workload: {args.requests} requests at {args.concurrency} concurrent, one in "
        f"{args.long_every} beyond the local context, {elapsed:.1f} s"
    )
    print(f"  answered by: {dict(routes)}")
    print(f"  local share: {local / args.requests:.1%} (target >= 95% when the engine keeps up)")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def added_latency(engine, bus, router: Router, samples: int) -> None:
    direct_ttft, routed_ttft = [], []
    for i in range(samples):
        order = (True, False) if i % 2 == 0 else (False, True)
        for straight in order:
            request = make_request(i, 4)
            if straight:
                direct_ttft.append(await direct(engine, request))
            else:
                routed_ttft.append((await via_router(bus, request))[0])
    decide = []
    request = make_request(0, 4)
    prompt_tokens = len(engine.render_prompt(prompts.engine_messages(request)))
    for _ in range(2000):
        started = time.perf_counter()
        route = router.route(request.model)
        router.check_context(route, prompt_tokens, request.max_tokens)
        decide.append(time.perf_counter() - started)
    print(f"added latency, {samples} sequential requests each way, same engine, same run:")
    for q in (0.5, 0.99):
        d, r = pct(direct_ttft, q) * 1000, pct(routed_ttft, q) * 1000
        print(
            f"  TTFT p{int(q * 100)}: direct {d:.1f} ms, via NATS + router {r:.1f} ms, "
            f"added {r - d:+.2f} ms"
        )
    print(
        f"  router decision (route + context check): median "
        f"{statistics.median(decide) * 1e6:.1f} us, p99 {pct(decide, 0.99) * 1e6:.1f} us"
    )


def build_router(registry: ModelRegistry, cloud: OpenAIServer, session) -> Router:
    models = [CloudModelSpec(name="cloud-small")]
    providers = [
        CloudProvider(ProviderSpec(name=n, base_url=cloud.base_url(n), models=models), session)
        for n in ("primary", "backup")
    ]
    routing = RoutingSpec(default_policy=TenantPolicy(cloud="allow"))
    return Router(registry, providers, routing)


async def main(args: argparse.Namespace) -> None:
    configure_logging("bench", level="WARNING", json=False)
    spec = next(m for m in load_models_config(DEFAULT_MODELS_FILE).models if m.kind == "chat")
    spec = msgspec.structs.replace(spec, fallback=["cloud-small"])
    engine = LocalChatEngine.load(spec, resolve_model_path(spec))
    nats = NatsServer(Path(tempfile.mkdtemp(prefix="revo-bench-"))).start()
    server_bus = await Bus.connect(nats.url, "bench-server")
    client_bus = await Bus.connect(nats.url, "bench-client")
    await ensure_streams(server_bus.js)
    await scripted_ledger(server_bus)
    cloud = await OpenAIServer(words=args.max_tokens).start()
    session = aiohttp.ClientSession()
    registry = ModelRegistry()
    registry.add_chat(engine)
    router = build_router(registry, cloud, session)
    cloud_caller = CloudCaller(server_bus, 2.0)
    handlers = InferenceHandlers(registry, UsagePublisher(server_bus), router, cloud_caller)
    endpoints = Endpoints(server_bus, "inference")
    await endpoints.start()
    await endpoints.add_stream("chat", subjects.INFERENCE_CHAT, ChatRequest, handlers.chat)
    try:
        await mixed_workload(client_bus, argparse.Namespace(**{**vars(args), "requests": 8}))
        print("(warm-up above)\n")
        await mixed_workload(client_bus, args)
        print()
        await added_latency(engine, client_bus, router, args.samples)
    finally:
        await endpoints.stop(grace=5)
        await cloud_caller.flush()
        await session.close()
        await cloud.stop()
        await client_bus.close()
        await server_bus.close()
        engine.shutdown()
        nats.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--long-every", type=int, default=40)
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--samples", type=int, default=30)
    asyncio.run(main(parser.parse_args()))
