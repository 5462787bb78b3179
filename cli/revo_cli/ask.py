"""`revo ask "..."`: stream an answer from the inference service to the terminal."""

from __future__ import annotations

import sys
import time
import uuid

from revo_cli.state import connect_cli
from revo_contracts import subjects
from revo_contracts.inference import ChatChunk, ChatMessage, ChatRequest
from revo_core.errors import RevoError
from revo_core.streaming import stream_request


def build_request(question: str, model: str, max_tokens: int, tenant: str, system: str | None):
    messages = [ChatMessage(role="system", content=system)] if system else []
    messages.append(ChatMessage(role="user", content=question))
    return ChatRequest(
        messages=messages,
        model=model,
        max_tokens=max_tokens,
        tenant=tenant,
        request_id=f"ask-{uuid.uuid4().hex}",
    )


async def ask(nats_url: str, request: ChatRequest, timeout: float) -> int:
    started = time.monotonic()
    try:
        bus = await connect_cli(nats_url)
    except RevoError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    last: ChatChunk | None = None
    try:
        stream = stream_request(bus, subjects.INFERENCE_CHAT, request, ChatChunk, timeout=timeout)
        async with stream as chunks:
            async for chunk in chunks:
                sys.stdout.write(chunk.delta)
                sys.stdout.flush()
                last = chunk
    except RevoError as exc:
        print(f"\nerror: {exc}", file=sys.stderr)
        return 1
    finally:
        await bus.close()
    print()
    if last is not None and last.usage is not None:
        usage = last.usage
        print(
            f"[{last.model} · {usage.prompt_tokens} prompt + {usage.completion_tokens} "
            f"completion tokens · {time.monotonic() - started:.1f} s · {last.finish_reason}]",
            file=sys.stderr,
        )
    return 0
