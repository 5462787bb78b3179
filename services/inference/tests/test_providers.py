"""The OpenAI-compatible client against a real HTTP server that plays the provider."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from revo_contracts.inference import ChatMessage, ChatRequest
from revo_core.testing.openai_server import OpenAIServer
from revo_inference.config import CloudModelSpec, ConfigError, ProviderSpec
from revo_inference.providers import CloudDelta, CloudProvider, ProviderFailed, StreamCut
from revo_inference.router import queue_factor

MODEL = CloudModelSpec(name="cloud-small", model="upstream-small")


@pytest.fixture
async def server() -> AsyncIterator[OpenAIServer]:
    running = await OpenAIServer().start()
    yield running
    await running.stop()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


def provider(server, session, name="primary", **overrides) -> CloudProvider:
    fields = {"name": name, "base_url": server.base_url(name), "models": [MODEL]}
    fields.update(overrides)
    return CloudProvider(ProviderSpec(**fields), session)


def request(**overrides) -> ChatRequest:
    fields = {
        "messages": [ChatMessage(role="user", content="Hi")],
        "tenant": "acme",
        "request_id": "req-1",
        "max_tokens": 16,
    }
    fields.update(overrides)
    return ChatRequest(**fields)


async def deltas(client: CloudProvider, **overrides) -> list[CloudDelta]:
    return [d async for d in client.stream(MODEL, request(**overrides))]


async def test_a_streamed_answer_becomes_deltas_ending_with_finish_and_usage(server, session):
    got = await deltas(provider(server, session))

    assert "".join(d.text for d in got) == server.answer("primary")
    assert [d.finish_reason for d in got if d.finish_reason] == ["stop"]
    assert got[-1].usage is not None and got[-1].usage.prompt_tokens == 100
    [sent] = server.received
    assert sent.body["model"] == "upstream-small" and sent.body["stream"] is True
    assert sent.body["messages"] == [{"role": "user", "content": "Hi"}]
    assert sent.body["max_tokens"] == 16


async def test_a_non_streamed_answer_is_one_delta(server, session):
    server.modes["primary"] = "plain"

    [delta] = await deltas(provider(server, session))

    assert delta.text == server.answer("primary") and delta.finish_reason == "stop"


async def test_an_http_error_is_a_provider_failure(server, session):
    server.modes["primary"] = "fail"

    with pytest.raises(ProviderFailed, match="HTTP 500"):
        await deltas(provider(server, session))


async def test_a_stalled_provider_times_out_before_its_first_token(server, session):
    server.modes["primary"] = "stall"

    with pytest.raises(ProviderFailed, match="timed out"):
        await deltas(provider(server, session, first_token_timeout_s=0.3))


async def test_a_stream_cut_after_its_first_token_is_a_stream_cut(server, session):
    server.modes["primary"] = "cut"

    with pytest.raises(StreamCut, match="primary"):
        await deltas(provider(server, session))


async def test_the_api_key_comes_from_the_environment_or_a_file(
    server, session, monkeypatch, tmp_path
):
    monkeypatch.setenv("TEST_PROVIDER_KEY", "sk-env")
    key_file = tmp_path / "key"
    key_file.write_text("sk-file\n")

    await deltas(provider(server, session, api_key_env="TEST_PROVIDER_KEY"))
    await deltas(provider(server, session, api_key_file=str(key_file)))

    assert [r.authorization for r in server.received] == ["Bearer sk-env", "Bearer sk-file"]


def test_a_missing_api_key_variable_is_a_config_error(server, session, monkeypatch):
    monkeypatch.delenv("TEST_PROVIDER_KEY", raising=False)

    with pytest.raises(ConfigError, match="TEST_PROVIDER_KEY"):
        provider(server, session, api_key_env="TEST_PROVIDER_KEY")


def test_the_first_token_waits_longer_only_once_the_batch_slots_are_full():
    assert queue_factor(unfinished=0, slots=4) == 1.0
    assert queue_factor(unfinished=3, slots=4) == 1.0
    assert queue_factor(unfinished=7, slots=4) == 2.0
