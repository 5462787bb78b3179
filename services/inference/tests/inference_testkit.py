"""Shared helpers of the inference tests."""

from __future__ import annotations

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
