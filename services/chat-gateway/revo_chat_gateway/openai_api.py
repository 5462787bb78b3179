"""OpenAI's API over runs: `GET /v1/models` and `POST /v1/chat/completions`.

A chat completion is a run of an agent: the model `revo/<agent>` names the agent, any other
model (`gpt-4o`, `auto`, ...) goes to the plain `assistant`, so an existing OpenAI client
works unchanged. The gateway holds no agent logic; it submits the run and follows it.
"""

from __future__ import annotations

import re
import time

import msgspec
from aiohttp import web

from revo_chat_gateway.agent_catalog import AgentCatalog
from revo_chat_gateway.auth import LIMITER, limit_key, principal_of
from revo_chat_gateway.http_errors import HttpError
from revo_chat_gateway.openai_stream import Completion, answer_as_json, answer_as_stream
from revo_contracts.gateway_http import (
    ChatCompletionBody,
    ModelEntry,
    ModelList,
    RequestMessage,
    TextPart,
)
from revo_contracts.inference import ChatMessage
from revo_contracts.runs import RunSubmit
from revo_core.runs import RunFollower, new_run_id, submit_run
from revo_core.service import BUS, SETTINGS

MODEL_PREFIX = "revo/"
DEFAULT_AGENT = "assistant"
_AGENT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


_body_decoder = msgspec.json.Decoder(ChatCompletionBody)


async def list_models(request: web.Request) -> web.Response:
    """Each agent of the agent-runner as a model `revo/<agent>` (a completion naming an
    agent that is not there ends its run `not_found`, answered 404)."""
    data = [
        ModelEntry(
            id=f"{MODEL_PREFIX}{agent.name}", description=agent.description, tools=agent.tools
        )
        for agent in await request.app[AGENT_CATALOG].agents()
    ]
    return web.json_response(msgspec.to_builtins(ModelList(data=data)))


async def chat_completions(request: web.Request) -> web.StreamResponse:
    body = await read_body(request)
    principal = principal_of(request)
    submit = RunSubmit(
        run_id=new_run_id(),
        tenant=principal.tenant,
        agent=agent_of(body.model),
        messages=[as_chat_message(m) for m in body.messages],
        user=principal.user(body.user),
        answer_max_tokens=body.max_completion_tokens or body.max_tokens,
    )
    completion = Completion(
        run_id=submit.run_id,
        model=body.model,
        created=int(time.time()),
        include_usage=bool(body.stream_options and body.stream_options.include_usage),
    )
    bus = request.app[BUS]
    timeout_s = request.app[SETTINGS].run_timeout_s  # type: ignore[attr-defined]
    # The follower is entered before submitting: token deltas are not replayed to a late one.
    async with (
        request.app[LIMITER].run_slot(limit_key(principal)),
        RunFollower(bus, submit.tenant, submit.run_id, tokens=body.stream, replay=False) as run,
    ):
        await submit_run(bus, submit)
        if body.stream:
            return await answer_as_stream(request, bus, run, completion, timeout_s)
        return await answer_as_json(bus, run, completion, timeout_s)


async def read_body(request: web.Request) -> ChatCompletionBody:
    raw = await request.read()  # over the size limit: aiohttp answers 413 itself
    try:
        return _body_decoder.decode(raw)
    except msgspec.ValidationError as exc:
        raise HttpError(400, f"invalid request body: {exc}", "invalid_request") from None
    except msgspec.DecodeError as exc:
        raise HttpError(400, f"request body is not valid JSON: {exc}", "invalid_request") from None


def agent_of(model: str) -> str:
    """`revo/<agent>` names an agent; any other model is plain chat with the assistant."""
    if not model.startswith(MODEL_PREFIX):
        return DEFAULT_AGENT
    agent = model[len(MODEL_PREFIX) :]
    if not _AGENT_NAME.match(agent):
        raise HttpError(404, f"the model {model!r} does not exist", "model_not_found")
    return agent


def as_chat_message(message: RequestMessage) -> ChatMessage:
    # OpenAI's newer "developer" role is its "system" role under another name.
    role = "system" if message.role == "developer" else message.role
    return ChatMessage(
        role=role,
        content=text_of(message.content),
        name=message.name,
        tool_call_id=message.tool_call_id,
    )


def text_of(content: str | list[TextPart] | None) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    return "".join(part.text for part in content if part.type == "text")


AGENT_CATALOG: web.AppKey[AgentCatalog] = web.AppKey("agent_catalog", AgentCatalog)


async def _catalog_on_startup(app: web.Application) -> None:
    app[AGENT_CATALOG] = AgentCatalog(app[BUS])


def add_routes(app: web.Application) -> None:
    app.on_startup.append(_catalog_on_startup)
    app.router.add_get("/v1/models", list_models)
    app.router.add_post("/v1/chat/completions", chat_completions)
