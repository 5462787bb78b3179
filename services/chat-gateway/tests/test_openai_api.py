"""OpenAI's API on the gateway, driven by the official `openai` client, over real runs."""

from __future__ import annotations

import asyncio
import time
import uuid

import aiohttp
import msgspec
import openai
import pytest
from gateway_testkit import base_url, hs256_token, http, openai_client, scripted_default

from revo_chat_gateway.openai_stream import HEADERS_HOLD_S
from revo_contracts import subjects
from revo_contracts.runs import RunGetRequest, RunSubmit
from revo_core.errors import NotFound
from revo_core.runs import get_run
from revo_core.testing.fixtures import create_api_key, nats_server_of
from revo_core.testing.scripted_model import Reply, Script, call, text

ANSWER = "Hello from revo, streamed word by word"
MESSAGES = [{"role": "user", "content": "Say hello"}]


@pytest.fixture
async def key(scripted_gateway, scripted_bus) -> str:
    return await create_api_key(scripted_bus, f"t{uuid.uuid4().hex[:8]}")


@pytest.fixture
def answers(scripted_model):
    with scripted_default(scripted_model, Script([text(ANSWER)])):
        yield


async def test_models_lists_each_agent_as_a_revo_model(scripted_gateway, key):
    models = await openai_client(scripted_gateway, key).models.list()

    # The runner's agents file: the service's own agents and the test agents.
    ids = [model.id for model in models.data]
    assert ids == [f"revo/{name}" for name in AGENTS_OF_THE_TEST_RUNNER]
    assert all(model.owned_by == "revo" and model.object == "model" for model in models.data)
    analyst = next(model for model in models.data if model.id == "revo/code-analyst")
    assert "run_linter" in analyst.model_extra["tools"]


AGENTS_OF_THE_TEST_RUNNER = ["assistant", "chatty", "code-analyst", "hasty", "scripted"]


async def test_models_without_any_agent_runner_is_503(revo_tmp, gateway_factory, bus_authority):
    # A NATS of its own: other tests start runners on the shared ones.
    server = nats_server_of(revo_tmp / "nats-no-runner", bus_authority)
    try:
        gateway = await asyncio.to_thread(gateway_factory.start, server.url, "gateway-alone")
        status, _, body = await asyncio.to_thread(
            http, "GET", f"{base_url(gateway)}/v1/models", hs256_token()
        )
        await asyncio.to_thread(gateway.stop)
    finally:
        server.stop()

    assert status == 503, body
    assert "no agent-runner" in body["error"]["message"]


async def test_a_completion_answers_with_the_run_s_answer(scripted_gateway, key, answers):
    client = openai_client(scripted_gateway, key)

    raw = await client.chat.completions.with_raw_response.create(
        model="revo/chatty", messages=MESSAGES
    )

    completion = raw.parse()
    run_id = raw.headers["X-Revo-Run-Id"]
    assert completion.id == f"chatcmpl-{run_id}"
    assert completion.object == "chat.completion"
    assert completion.model == "revo/chatty"
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].message.content == ANSWER
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.total_tokens == 60


async def test_a_run_is_for_the_token_s_subject_or_else_the_application_s_user(
    scripted_gateway, scripted_bus, answers
):
    """The run's user is whose memories agents recall: a JWT vouches for its subject, an
    API key's application names its end user (OpenAI's `user`), else the key stands."""
    tenant = f"t{uuid.uuid4().hex[:8]}"
    key = await create_api_key(scripted_bus, tenant)
    submitted: list[RunSubmit] = []

    async def keep(msg) -> None:
        submitted.append(msgspec.json.decode(msg.data, type=RunSubmit))

    # Runs are published to a stream; a plain subscription sees each one as it is stored.
    subscription = await scripted_bus.nc.subscribe(subjects.runs_submit(tenant), cb=keep)
    try:
        token = hs256_token(tenant, sub="user-7")
        await openai_client(scripted_gateway, token).chat.completions.create(
            model="revo/chatty", messages=MESSAGES, user="someone-else"
        )
        client = openai_client(scripted_gateway, key)
        await client.chat.completions.create(model="revo/chatty", messages=MESSAGES, user="eu-1")
        await client.chat.completions.create(model="revo/chatty", messages=MESSAGES)
    finally:
        await subscription.unsubscribe()

    key_id = key.split("_")[1]
    assert [run.user for run in submitted] == ["user-7", "eu-1", f"key:{key_id}"]


async def test_a_streamed_completion_joins_to_the_answer_and_ends_normally(
    scripted_gateway, key, answers
):
    client = openai_client(scripted_gateway, key)

    stream = await client.chat.completions.create(
        model="revo/chatty",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]

    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == ANSWER
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert chunks[-1].usage.total_tokens == 60
    assert all(c.object == "chat.completion.chunk" and c.model == "revo/chatty" for c in chunks)


async def test_a_streamed_agent_that_answers_through_a_tool_still_streams_its_answer(
    scripted_gateway, key, scripted_model
):
    client = openai_client(scripted_gateway, key)
    script = Script([call("list_files", path="."), call("final_answer", answer="It is 42.")])

    with scripted_default(scripted_model, script):
        stream = await client.chat.completions.create(
            model="revo/scripted", messages=MESSAGES, stream=True
        )
        chunks = [chunk async for chunk in stream]

    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "It is 42."
    assert chunks[-1].choices[0].finish_reason == "stop"


async def test_any_other_model_is_plain_chat_with_the_assistant(
    scripted_gateway, scripted_bus, key, answers
):
    client = openai_client(scripted_gateway, key)

    raw = await client.chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES)

    assert raw.parse().choices[0].message.content == ANSWER
    tenant = (await asyncio.to_thread(_whoami, scripted_gateway, key))["tenant"]
    detail = await get_run(
        scripted_bus, RunGetRequest(run_id=raw.headers["X-Revo-Run-Id"], tenant=tenant)
    )
    assert detail.run.agent == "assistant"


def _whoami(gateway, key: str) -> dict:
    return http("GET", f"{base_url(gateway)}/v1/whoami", key)[2]


async def test_a_failing_run_is_the_client_s_typed_error(scripted_gateway, key, scripted_model):
    client = openai_client(scripted_gateway, key)

    with (
        scripted_default(scripted_model, Script([Reply(error="invalid_request")])),
        pytest.raises(openai.BadRequestError) as raised,
    ):
        await client.chat.completions.create(model="revo/chatty", messages=MESSAGES)

    assert raised.value.code == "invalid_request"


async def test_a_streamed_run_that_fails_after_the_stream_began_ends_with_an_error_event(
    scripted_gateway, key, scripted_model
):
    client = openai_client(scripted_gateway, key)
    late = Reply(error="upstream_error", delay_s=HEADERS_HOLD_S + 1.5)

    with scripted_default(scripted_model, Script([late])):
        stream = await client.chat.completions.create(
            model="revo/chatty", messages=MESSAGES, stream=True
        )
        with pytest.raises(openai.APIError) as raised:
            async for _ in stream:
                pass

    assert "upstream_error" in str(raised.value)


TOO_LONG = Reply(
    error="invalid_request",
    error_details={"field": "max_tokens", "max_context": 2048, "prompt_tokens": 40_093},
)


@pytest.mark.parametrize("stream", [False, True])
async def test_a_prompt_beyond_the_context_is_400_context_length_exceeded(
    scripted_gateway, key, scripted_model, stream
):
    client = openai_client(scripted_gateway, key)

    with (
        scripted_default(scripted_model, Script([TOO_LONG])),
        pytest.raises(openai.BadRequestError) as raised,
    ):
        async with asyncio.timeout(10):  # the run fails once, it is not retried until gave_up
            await client.chat.completions.create(
                model="revo/chatty", messages=MESSAGES, stream=stream
            )

    assert raised.value.code == "context_length_exceeded"
    assert "2048-token context" in raised.value.message


LONG_ANSWER = " ".join(f"w{i}" for i in range(40))


@pytest.mark.parametrize("limit", [{"max_tokens": 3}, {"max_completion_tokens": 3}])
async def test_max_tokens_cuts_the_answer_and_finishes_with_length(
    scripted_gateway, key, scripted_model, limit
):
    client = openai_client(scripted_gateway, key)

    with scripted_default(scripted_model, Script([text(LONG_ANSWER)])):
        completion = await client.chat.completions.create(
            model="revo/chatty", messages=MESSAGES, **limit
        )

    assert completion.choices[0].message.content == "w0 w1 w2"
    assert completion.choices[0].finish_reason == "length"


async def test_max_tokens_cuts_a_streamed_answer_and_its_last_chunk_says_length(
    scripted_gateway, key, scripted_model
):
    client = openai_client(scripted_gateway, key)

    with scripted_default(scripted_model, Script([text(LONG_ANSWER)])):
        stream = await client.chat.completions.create(
            model="revo/chatty", messages=MESSAGES, stream=True, max_tokens=3
        )
        chunks = [chunk async for chunk in stream]

    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "w0 w1 w2"
    assert chunks[-1].choices[0].finish_reason == "length"


async def test_an_answer_within_max_tokens_finishes_with_stop(scripted_gateway, key, answers):
    client = openai_client(scripted_gateway, key)

    completion = await client.chat.completions.create(
        model="revo/chatty", messages=MESSAGES, max_tokens=100
    )

    assert completion.choices[0].message.content == ANSWER
    assert completion.choices[0].finish_reason == "stop"


async def test_an_oversized_user_is_400_at_once_naming_the_field(scripted_gateway, key):
    url = f"{base_url(scripted_gateway)}/v1/chat/completions"
    body = {"model": "revo/chatty", "messages": MESSAGES, "user": "u" * 300}

    started = time.monotonic()
    status, _, answer = http("POST", url, key, body, timeout=10)

    assert status == 400, answer
    assert answer["error"]["code"] == "invalid_request"
    assert "$.user" in answer["error"]["message"]
    assert time.monotonic() - started < 5


async def test_an_unknown_agent_is_model_not_found(scripted_gateway, key):
    client = openai_client(scripted_gateway, key)

    for model in ("revo/nope", "revo/Not An Agent"):
        with pytest.raises(openai.NotFoundError) as raised:
            await client.chat.completions.create(model=model, messages=MESSAGES)
        assert raised.value.code == "model_not_found"


async def test_a_missing_or_invalid_key_is_an_authentication_error(scripted_gateway, key):
    wrong = key[: key.rindex("_") + 1] + "x" * 43

    for credential in (wrong, "not-a-key"):
        with pytest.raises(openai.AuthenticationError):
            await openai_client(scripted_gateway, credential).models.list()
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{base_url(scripted_gateway)}/v1/models") as response,
    ):
        assert response.status == 401


async def test_a_bad_body_is_400_naming_what_is_wrong(scripted_gateway, key):
    url = f"{base_url(scripted_gateway)}/v1/chat/completions"
    cases = [
        (b"{not json", "not valid JSON"),
        (b'{"model": "revo/chatty"}', "messages"),
        (b'{"messages": "hello"}', "$.messages"),
        (b'{"messages": []}', "$.messages"),
        (b'{"messages": [{"role": "user", "content": "hi"}], "stream": "yes"}', "$.stream"),
    ]
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {key}"}) as session:
        for raw, said in cases:
            async with session.post(url, data=raw) as response:
                body = await response.json()
            assert response.status == 400, (raw, body)
            assert body["error"]["code"] == "invalid_request"
            assert said in body["error"]["message"], (raw, body)


async def test_a_client_that_goes_away_mid_stream_cancels_its_run(
    scripted_gateway, scripted_bus, key, scripted_model
):
    gate = asyncio.Event()
    url = f"{base_url(scripted_gateway)}/v1/chat/completions"
    body = {"model": "revo/chatty", "messages": MESSAGES, "stream": True}
    tenant = (await asyncio.to_thread(_whoami, scripted_gateway, key))["tenant"]

    with scripted_default(scripted_model, Script([Reply(text="never sent", gate=gate)])):
        try:
            async with (
                aiohttp.ClientSession(headers={"Authorization": f"Bearer {key}"}) as session,
                session.post(url, json=body) as response,
            ):
                run_id = response.headers["X-Revo-Run-Id"]
                await response.content.readline()  # the role chunk: the run is on
            status = await _status_when_ended(scripted_bus, run_id, tenant)
        finally:
            gate.set()

    assert status == "cancelled"


async def _status_when_ended(bus, run_id: str, tenant: str, within_s: float = 15) -> str:
    async with asyncio.timeout(within_s):
        while True:
            try:
                detail = await get_run(bus, RunGetRequest(run_id=run_id, tenant=tenant))
            except NotFound:  # still queued: no runner has taken (and recorded) it yet
                detail = None
            if detail is not None and detail.run.status in ("finished", "failed", "cancelled"):
                return detail.run.status
            await asyncio.sleep(0.2)


# -- limits, on gateways of their own -------------------------------------------------------


async def test_the_request_over_the_rate_limit_is_429_with_retry_after(
    scripted_nats, scripted_runner, gateway_factory, scripted_bus
):
    gateway = await asyncio.to_thread(
        gateway_factory.start,
        scripted_nats.url,
        "gateway-limited",
        REVO_CHAT_GATEWAY_RATE_LIMIT_PER_MINUTE="3",
    )
    key = await create_api_key(scripted_bus, "limited")
    url = f"{base_url(gateway)}/v1/models"

    answers = [await asyncio.to_thread(http, "GET", url, key) for _ in range(4)]

    assert [status for status, _, _ in answers] == [200, 200, 200, 429]
    _, headers, body = answers[3]
    assert int(headers["Retry-After"]) >= 1
    assert body["error"]["code"] == "rate_limited"


async def test_a_body_over_the_size_limit_is_413_and_the_gateway_lives_on(
    scripted_nats, scripted_runner, gateway_factory, scripted_bus, scripted_model
):
    gateway = await asyncio.to_thread(
        gateway_factory.start,
        scripted_nats.url,
        "gateway-small",
        REVO_CHAT_GATEWAY_MAX_MESSAGE_BYTES="4096",
    )
    key = await create_api_key(scripted_bus, "small")
    big = [{"role": "user", "content": "x" * 8192}]
    url = f"{base_url(gateway)}/v1/chat/completions"

    status, _, _ = await asyncio.to_thread(
        http, "POST", url, key, {"model": "revo/chatty", "messages": big}
    )

    assert status == 413
    with scripted_default(scripted_model, Script([text(ANSWER)])):
        completion = await openai_client(gateway, key).chat.completions.create(
            model="revo/chatty", messages=MESSAGES
        )
    assert completion.choices[0].message.content == ANSWER


async def test_a_run_past_the_run_timeout_is_504_and_cancelled(
    scripted_nats, scripted_runner, gateway_factory, scripted_bus, scripted_model
):
    gateway = await asyncio.to_thread(
        gateway_factory.start,
        scripted_nats.url,
        "gateway-impatient",
        REVO_CHAT_GATEWAY_RUN_TIMEOUT_S="1",
    )
    key = await create_api_key(scripted_bus, "impatient")
    gate = asyncio.Event()

    with scripted_default(scripted_model, Script([Reply(text="too late", gate=gate)])):
        try:
            with pytest.raises(openai.APIStatusError) as raised:
                await openai_client(gateway, key).chat.completions.with_raw_response.create(
                    model="revo/chatty", messages=MESSAGES
                )
            runs = await asyncio.to_thread(http, "GET", f"{base_url(gateway)}/v1/runs", key)
            run_id = runs[2]["runs"][0]["run_id"]
            status = await _status_when_ended(scripted_bus, run_id, "impatient")
        finally:
            gate.set()

    assert raised.value.status_code == 504
    assert status == "cancelled"
