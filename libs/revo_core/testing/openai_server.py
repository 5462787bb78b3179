"""A real HTTP server speaking OpenAI's chat-completions protocol, for tests and benches.

Each provider is a path prefix (`http://127.0.0.1:<port>/<provider>/v1`), so one server
plays several providers. It records what it receives and can be told, per provider, to
answer streamed (`ok`) or in one JSON body (`plain`), to fail (HTTP 500), to stall (no
answer for a minute), or to cut its stream after a few chunks.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web

Mode = Literal["ok", "plain", "fail", "stall", "cut"]


@dataclass
class Received:
    provider: str
    body: dict[str, Any]
    authorization: str | None
    at: float = field(default_factory=time.time)


class OpenAIServer:
    def __init__(self, words: int = 5, usage: tuple[int, int] | None = (100, 5)) -> None:
        self.received: list[Received] = []
        self.modes: dict[str, Mode] = {}
        self.words = words
        # (prompt, completion) tokens reported in the usage chunk; None: no usage sent.
        self.usage = usage
        self.cut_after = 2
        self.delay_s = 0.0  # between two chunks
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> OpenAIServer:
        app = web.Application()
        app.router.add_post("/{provider}/v1/chat/completions", self._chat)
        # Stalled handlers are cut at shutdown instead of being waited for.
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def base_url(self, provider: str) -> str:
        return f"http://127.0.0.1:{self.port}/{provider}/v1"

    def reset(self) -> None:
        self.received.clear()
        self.modes.clear()

    def answer(self, provider: str) -> str:
        return " ".join(f"{provider}{i}" for i in range(self.words))

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        provider = request.match_info["provider"]
        body = await request.json()
        self.received.append(Received(provider, body, request.headers.get("Authorization")))
        mode = self.modes.get(provider, "ok")
        if mode == "fail":
            return web.json_response({"error": {"message": "scripted failure"}}, status=500)
        if mode == "stall":
            await asyncio.sleep(60)
        if mode == "plain" or not body.get("stream"):
            return web.json_response(self._completion(provider, body))
        return await self._stream(request, provider, body, cut=mode == "cut")

    def _completion(self, provider: str, body: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": "cmpl-test",
            "object": "chat.completion",
            "model": body.get("model"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": self.answer(provider)},
                    "finish_reason": "stop",
                }
            ],
            **self._usage_field(),
        }

    def _usage_field(self) -> dict[str, Any]:
        if self.usage is None:
            return {}
        prompt, completion = self.usage
        return {
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            }
        }

    async def _stream(
        self, request: web.Request, provider: str, body: dict[str, Any], cut: bool
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        words = self.answer(provider).split(" ")
        for i, word in enumerate(words):
            if cut and i == self.cut_after:
                # Gone mid-answer, as a crashed upstream would be: no finish, no [DONE].
                request.transport.close()  # type: ignore[union-attr]
                return response
            text = word if i == 0 else f" {word}"
            await _event(response, _chunk(body, {"content": text}, None))
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
        await _event(response, _chunk(body, {}, "stop"))
        if self.usage is not None:
            await _event(response, {"id": "c", "choices": [], **self._usage_field()})
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response


def _chunk(body: dict[str, Any], delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
    return {
        "id": "chunk-test",
        "object": "chat.completion.chunk",
        "model": body.get("model"),
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


async def _event(response: web.StreamResponse, payload: dict[str, Any]) -> None:
    await response.write(f"data: {json.dumps(payload)}\n\n".encode())
