"""Shared helpers of the inference tests."""

from __future__ import annotations

import asyncio
import re
import time
import urllib.request
import uuid

from revo_contracts import subjects
from revo_contracts.inference import ChatChunk, ChatMessage, ChatRequest
from revo_core.streaming import stream_request

EMBEDDED_CHAT_MODEL = "smollm2-135m-instruct"


def chat_request(text: str, **overrides) -> ChatRequest:
    fields = {
        "messages": [ChatMessage(role="user", content=text)],
        "tenant": "acme",
        "request_id": f"req-{uuid.uuid4().hex}",
        "temperature": 0.0,
        "max_tokens": 32,
    }
    fields.update(overrides)
    return ChatRequest(**fields)


async def collect(bus, request) -> list[ChatChunk]:
    async with stream_request(bus, subjects.INFERENCE_CHAT, request, ChatChunk) as chunks:
        return [chunk async for chunk in chunks]


def metric_value(service, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels`, read from /metrics."""
    with urllib.request.urlopen(service.metrics_url, timeout=5) as response:
        text = response.read().decode()
    total = 0.0
    for line in text.splitlines():
        match = re.match(rf"^{re.escape(name)}(?:{{(.*)}})? (\S+)$", line)
        if not match:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(match.group(2))
    return total


async def wait_for_metric(
    service, name: str, expected: float, timeout: float = 10.0, **labels
) -> float:
    """Poll /metrics without blocking the event loop (the bus must keep flushing)."""
    end = time.monotonic() + timeout
    value = metric_value(service, name, **labels)
    while value != expected and time.monotonic() < end:
        await asyncio.sleep(0.1)
        value = metric_value(service, name, **labels)
    return value
