"""Cloud providers: OpenAI-compatible chat-completions over HTTP (aiohttp), streamed.

A provider's answer becomes a stream of `CloudDelta`s. Failing before the first delta is
a `ProviderFailed` (the router tries the next candidate); failing after it is a
`StreamCut` (the caller already has part of the answer, so it gets an error instead of a
silently shorter one).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import msgspec

from revo_contracts.inference import ChatRequest, FunctionCall, ToolCall, Usage
from revo_inference.config import CloudModelSpec, ConfigError, ProviderSpec


class ProviderFailed(Exception):
    """The provider gave nothing usable; nothing was sent to the caller yet."""


class StreamCut(Exception):
    """The provider's stream broke after part of the answer was sent."""


class CloudDelta(msgspec.Struct, kw_only=True):
    text: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None
    tool_calls: list[ToolCall] = []


class CloudProvider:
    def __init__(self, spec: ProviderSpec, session: aiohttp.ClientSession) -> None:
        self.spec = spec
        self._session = session
        self._api_key = read_api_key(spec)
        self._cool_until = 0.0

    @property
    def name(self) -> str:
        return self.spec.name

    def cooling_down(self) -> bool:
        return time.monotonic() < self._cool_until

    def cool_down(self) -> None:
        self._cool_until = time.monotonic() + self.spec.cooldown_s

    async def stream(
        self, model: CloudModelSpec, request: ChatRequest
    ) -> AsyncIterator[CloudDelta]:
        url = self.spec.base_url.rstrip("/") + "/chat/completions"
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        timeout = aiohttp.ClientTimeout(sock_connect=self.spec.connect_timeout_s)
        started = time.monotonic()
        sent = False
        try:
            async with asyncio.timeout(self.spec.first_token_timeout_s):
                response = await self._session.post(
                    url, json=request_body(model, request), headers=headers, timeout=timeout
                )
            async with response:
                await _check_status(response)
                async for delta in self._deltas(response, started):
                    sent = sent or bool(delta.text or delta.tool_calls or delta.finish_reason)
                    yield delta
        except (aiohttp.ClientError, TimeoutError, ValueError, ProviderFailed) as exc:
            why = _describe(exc)
            if sent:
                raise StreamCut(f"{self.name} broke off its stream: {why}") from None
            raise ProviderFailed(f"{self.name}: {why}") from None

    async def _deltas(
        self, response: aiohttp.ClientResponse, started: float
    ) -> AsyncIterator[CloudDelta]:
        if not response.content_type.startswith("text/event-stream"):
            yield parse_completion(await response.json(content_type=None))
            return
        calls = _ToolCallAssembler()
        finished = False
        first_by = started + self.spec.first_token_timeout_s
        async for data in _sse_events(response, first_by, self.spec.idle_timeout_s):
            delta = parse_chunk(json.loads(data), calls)
            finished = finished or delta.finish_reason is not None
            yield delta
        if not finished:
            raise ValueError("the stream ended without a finish_reason")


async def _sse_events(
    response: aiohttp.ClientResponse, first_by: float, idle_s: float
) -> AsyncIterator[str]:
    """The `data:` payloads of a server-sent-events body up to [DONE]; the first must come
    by `first_by` (monotonic), each later one within `idle_s` of the one before."""
    limit = max(first_by - time.monotonic(), 0.0)
    while True:
        # The timeout wraps the read only, never a yield: it must not fire in the caller.
        async with asyncio.timeout(limit):
            line = await response.content.readline()
        if not line:
            raise ValueError("the connection closed before [DONE]")
        text = line.decode().strip()
        if not text.startswith("data:"):
            continue
        data = text[5:].strip()
        if data == "[DONE]":
            return
        limit = idle_s
        yield data


async def _check_status(response: aiohttp.ClientResponse) -> None:
    if response.status >= 400:
        body = (await response.text())[:300]
        raise ProviderFailed(f"HTTP {response.status}: {body}")


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc) or exc.__class__.__name__


def read_api_key(spec: ProviderSpec) -> str | None:
    if spec.api_key_env:
        key = os.environ.get(spec.api_key_env)
        if not key:
            raise ConfigError(f"provider {spec.name}: ${spec.api_key_env} is not set")
        return key
    if spec.api_key_file:
        try:
            return Path(spec.api_key_file).read_text().strip()
        except OSError as exc:
            raise ConfigError(f"provider {spec.name}: api_key_file: {exc}") from None
    return None


def request_body(model: CloudModelSpec, request: ChatRequest) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": model.upstream_name,
        "messages": msgspec.to_builtins(request.messages),
        "max_tokens": request.max_tokens,
        "temperature": request.temperature,
        "top_p": request.top_p,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if request.stop:
        body["stop"] = request.stop
    if request.seed is not None:
        body["seed"] = request.seed
    if request.response_format is not None:
        body["response_format"] = msgspec.to_builtins(request.response_format)
    if request.tools:
        body["tools"] = msgspec.to_builtins(request.tools)
        body["tool_choice"] = request.tool_choice
    return body


def parse_completion(payload: dict[str, Any]) -> CloudDelta:
    """A non-streamed completion (some servers ignore `stream`) as one delta."""
    choice = (payload.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    calls = [msgspec.convert(c, ToolCall) for c in message.get("tool_calls") or []]
    return CloudDelta(
        text=message.get("content") or "",
        finish_reason=choice.get("finish_reason") or "stop",
        usage=_usage(payload),
        tool_calls=calls,
    )


def parse_chunk(payload: dict[str, Any], calls: _ToolCallAssembler) -> CloudDelta:
    choices = payload.get("choices") or []
    delta = CloudDelta(usage=_usage(payload))
    if choices:
        choice = choices[0]
        piece = choice.get("delta") or {}
        delta.text = piece.get("content") or ""
        calls.add(piece.get("tool_calls") or [])
        delta.finish_reason = choice.get("finish_reason")
        if delta.finish_reason is not None:
            delta.tool_calls = calls.done()
    return delta


def _usage(payload: dict[str, Any]) -> Usage | None:
    usage = payload.get("usage")
    if not usage:
        return None
    prompt = int(usage.get("prompt_tokens") or 0)
    completion = int(usage.get("completion_tokens") or 0)
    return Usage(
        prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
    )


class _ToolCallAssembler:
    """Streamed tool calls come in pieces (name first, arguments in fragments) by index."""

    def __init__(self) -> None:
        self._calls: dict[int, dict[str, str]] = {}

    def add(self, pieces: list[dict[str, Any]]) -> None:
        for piece in pieces:
            call = self._calls.setdefault(
                int(piece.get("index", 0)), {"id": "", "name": "", "args": ""}
            )
            call["id"] = piece.get("id") or call["id"]
            function = piece.get("function") or {}
            call["name"] += function.get("name") or ""
            call["args"] += function.get("arguments") or ""

    def done(self) -> list[ToolCall]:
        return [
            ToolCall(id=c["id"], function=FunctionCall(name=c["name"], arguments=c["args"]))
            for _, c in sorted(self._calls.items())
        ]
