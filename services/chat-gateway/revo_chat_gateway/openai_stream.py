"""The two ways a chat completion answers: one JSON body when the run ends, or an SSE
stream of `chat.completion.chunk`s as its text tokens come (OpenAI's shapes, both).

A run that fails answers an HTTP error while nothing was sent yet, and an SSE error event
once the stream has begun: a client never gets a silently truncated answer.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from revo_chat_gateway.http_errors import HttpError
from revo_contracts.inference import Usage
from revo_contracts.runs import RunEvent, RunFailed, RunFinished, TokenDelta
from revo_core.bus import Bus
from revo_core.runs import RunFollower, cancel_run, event_type

RUN_ID_HEADER = "X-Revo-Run-Id"
# An SSE comment this often while no token comes: it keeps proxies from closing an idle
# stream, and a write is how a vanished client is noticed (its run is then cancelled).
KEEPALIVE_S = 2.0
# How long a stream's headers wait for its first text (see SseAnswer).
HEADERS_HOLD_S = 4.0

# How a failed run's code reads as HTTP: (status, OpenAI-style error code).
_FAILURE_STATUS = {
    "invalid_request": (400, "invalid_request"),
    "context_length_exceeded": (400, "context_length_exceeded"),
    "not_found": (404, "model_not_found"),
    "limit_exceeded": (422, "limit_exceeded"),
    "stuck_loop": (422, "stuck_loop"),
    "invalid_tool_call": (422, "invalid_tool_call"),
    "upstream_error": (502, "upstream_error"),
}


@dataclass(frozen=True)
class Completion:
    """What every response of one chat completion repeats."""

    run_id: str
    model: str
    created: int
    include_usage: bool = False

    @property
    def id(self) -> str:
        return f"chatcmpl-{self.run_id}"


class RunTimedOut(Exception):
    def __init__(self, error: HttpError) -> None:
        super().__init__(error.message)
        self.error = error


def run_failure(event: RunEvent) -> HttpError:
    """The HTTP error of a run that ended without an answer (failed or cancelled)."""
    if isinstance(event, RunFailed):
        status, code = _FAILURE_STATUS.get(event.code, (500, event.code))
        return HttpError(status, event.reason, code)
    reason = getattr(event, "reason", "") or "the run was cancelled"
    return HttpError(500, f"run {event_type(event)}: {reason}", "cancelled")


def usage_json(usage: Usage | None) -> dict[str, int]:
    usage = usage or Usage()
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


# -- one JSON body ------------------------------------------------------------------------


async def answer_as_json(
    bus: Bus, run: RunFollower, completion: Completion, timeout_s: float
) -> web.Response:
    end = await _last_event(bus, run, timeout_s)
    if not isinstance(end, RunFinished):
        raise run_failure(end)
    body = {
        "id": completion.id,
        "object": "chat.completion",
        "created": completion.created,
        "model": completion.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": end.answer},
                "finish_reason": end.finish_reason,
            }
        ],
        "usage": usage_json(end.usage),
    }
    return web.json_response(body, headers={RUN_ID_HEADER: completion.run_id})


async def _last_event(bus: Bus, run: RunFollower, timeout_s: float) -> RunEvent:
    last: Any = None
    try:
        async with asyncio.timeout(timeout_s):
            async for last in run:  # noqa: B007 - the loop ends on the terminal event
                pass
    except TimeoutError:
        await cancel_run(bus, run.run_id, "timed out in the gateway")
        raise HttpError(504, f"the run took longer than {timeout_s:g} s", "timeout") from None
    return last


# -- an SSE stream ------------------------------------------------------------------------


async def answer_as_stream(
    request: web.Request, bus: Bus, run: RunFollower, completion: Completion, timeout_s: float
) -> web.StreamResponse:
    answer = SseAnswer(request, completion)
    try:
        await answer.follow(run, timeout_s)
    except ConnectionResetError:
        # The client went away: nobody will read this answer, so stop spending on it.
        await cancel_run(bus, run.run_id, "client disconnected")
    except asyncio.CancelledError:
        await asyncio.shield(cancel_run(bus, run.run_id, "client disconnected"))
        raise
    except RunTimedOut as timed_out:
        await cancel_run(bus, run.run_id, "timed out in the gateway")
        await answer.fail(timed_out.error)
    return await answer.started()


class SseAnswer:
    """Writes one run as OpenAI's stream: role chunk, text chunks, stop chunk, [DONE].

    The headers wait for the run's first text or its end (at most HEADERS_HOLD_S): a run
    that fails before answering (its prompt beyond the model's context, say) is then a
    plain HTTP error, as OpenAI's own; one that fails later is an error event."""

    def __init__(self, request: web.Request, completion: Completion) -> None:
        self.request = request
        self.completion = completion
        self.response: web.StreamResponse | None = None
        self.sent = ""
        self._held_since = asyncio.get_running_loop().time()

    async def started(self) -> web.StreamResponse:
        """The stream, its headers and role chunk sent (now, if they were not yet)."""
        if self.response is None:
            self.response = web.StreamResponse(
                headers={
                    "Content-Type": "text/event-stream",
                    "Cache-Control": "no-cache",
                    RUN_ID_HEADER: self.completion.run_id,
                }
            )
            await self.response.prepare(self.request)
            await self._chunk({"role": "assistant", "content": ""})
        return self.response

    async def follow(self, run: RunFollower, timeout_s: float) -> None:
        try:
            async with asyncio.timeout(timeout_s):
                async for item in with_keepalive(run, KEEPALIVE_S):
                    await self._on(item)
        except TimeoutError:
            error = HttpError(504, f"the run took longer than {timeout_s:g} s", "timeout")
            raise RunTimedOut(error) from None

    async def fail(self, error: HttpError) -> None:
        """The run's failure: an HTTP error before the stream began, an error event after."""
        if self.response is None:
            raise error
        await self._error(error)

    async def _on(self, item: RunEvent | TokenDelta | None) -> None:
        if item is None:
            await self._keep_alive()
        elif isinstance(item, TokenDelta):
            if item.kind == "text" and item.delta:
                self.sent += item.delta
                await self._chunk({"content": item.delta})
        elif isinstance(item, RunFinished):
            await self._finish(item)
        elif event_type(item) in ("failed", "cancelled"):
            await self.fail(run_failure(item))

    async def _keep_alive(self) -> None:
        held = asyncio.get_running_loop().time() - self._held_since
        if self.response is None and held < HEADERS_HOLD_S:
            return
        response = await self.started()
        await response.write(b": keep-alive\n\n")

    async def _finish(self, end: RunFinished) -> None:
        # Tokens come over core NATS and may trail the finished event, and an agent that
        # answers through a tool streams no text at all: send whatever the client lacks.
        rest = end.answer[len(self.sent) :] if end.answer.startswith(self.sent) else ""
        if rest:
            await self._chunk({"content": rest})
        usage = {"usage": usage_json(end.usage)} if self.completion.include_usage else {}
        await self._chunk({}, finish_reason=end.finish_reason, **usage)
        response = await self.started()
        await response.write(b"data: [DONE]\n\n")

    async def _chunk(self, delta: dict, finish_reason: str | None = None, **extra: Any) -> None:
        chunk = {
            "id": self.completion.id,
            "object": "chat.completion.chunk",
            "created": self.completion.created,
            "model": self.completion.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
            **extra,
        }
        await self._data(chunk)

    async def _error(self, error: HttpError) -> None:
        await self._data(
            {"error": {"message": error.message, "type": error.code, "code": error.code}}
        )

    async def _data(self, payload: dict) -> None:
        response = await self.started()
        await response.write(f"data: {json.dumps(payload)}\n\n".encode())


async def with_keepalive(items: AsyncIterator[Any], every_s: float) -> AsyncIterator[Any]:
    """The items, with a None whenever none came for `every_s`.

    The pending `anext` is waited on, never cancelled: cancelling it would end `items`."""
    iterator = aiter(items)
    pending = asyncio.ensure_future(anext(iterator))
    try:
        while True:
            done, _ = await asyncio.wait({pending}, timeout=every_s)
            if not done:
                yield None
                continue
            try:
                item = pending.result()
            except StopAsyncIteration:
                return
            yield item
            pending = asyncio.ensure_future(anext(iterator))
    finally:
        pending.cancel()
