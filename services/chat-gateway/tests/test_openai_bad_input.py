"""Bad input over HTTP is a typed 4xx in OpenAI's shape, decided before anything streams."""

from __future__ import annotations

import asyncio
import json
import uuid

import aiohttp
import pytest
from gateway_testkit import base_url, http

from revo_core.testing.fixtures import create_api_key

MESSAGES = [{"role": "user", "content": "Say hello"}]
DEEP = "[" * 20_000 + "]" * 20_000


@pytest.fixture
async def key(scripted_gateway, scripted_bus) -> str:
    return await create_api_key(scripted_bus, f"t{uuid.uuid4().hex[:8]}")


async def _post(gateway, key: str, raw: str | bytes, content_type: str = "application/json"):
    """(status, Content-Type, parsed body) of a raw POST /v1/chat/completions."""
    headers = {"Authorization": f"Bearer {key}", "Content-Type": content_type}
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{base_url(gateway)}/v1/chat/completions", data=raw, headers=headers
        ) as response,
    ):
        return response.status, response.content_type, await response.json()


async def test_a_streamed_completion_of_an_unknown_model_is_a_404_before_any_event(
    scripted_gateway, key
):
    body = '{"model": "revo/nope", "stream": true, "messages": [{"role": "user", "content": "hi"}]}'

    status, content_type, answer = await _post(scripted_gateway, key, body)

    assert (status, content_type) == (404, "application/json"), answer
    assert answer["error"]["code"] == "model_not_found"


async def test_a_json_body_sent_as_a_form_is_415(scripted_gateway, key):
    body = '{"model": "revo/chatty", "messages": [{"role": "user", "content": "hi"}]}'

    status, _, answer = await _post(
        scripted_gateway, key, body, "application/x-www-form-urlencoded"
    )

    assert status == 415, answer
    assert "application/json" in answer["error"]["message"]


async def test_a_user_message_without_content_is_400_naming_it(scripted_gateway, key):
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": None}]
    body = json.dumps({"messages": messages})

    status, _, answer = await _post(scripted_gateway, key, body)

    assert status == 400, answer
    assert "messages[1].content" in answer["error"]["message"]


async def test_a_conversation_of_only_system_messages_is_400_and_starts_no_run(
    scripted_gateway, key
):
    body = {"messages": [{"role": "system", "content": "be brief"}]}

    status, _, answer = await _post(scripted_gateway, key, json.dumps(body))
    runs = await asyncio.to_thread(http, "GET", f"{base_url(scripted_gateway)}/v1/runs", key)

    assert status == 400, answer
    assert "no user, assistant or tool message" in answer["error"]["message"]
    assert runs[2]["runs"] == []


async def test_a_body_nested_deeper_than_json_can_be_decoded_is_400(scripted_gateway, key):
    body = '{"messages": [{"role": "user", "content": "hi"}], "extra": ' + DEEP + "}"

    status, _, answer = await _post(scripted_gateway, key, body)

    assert status == 400, answer
    assert answer["error"]["code"] == "invalid_request"
    assert "nested too deep" in answer["error"]["message"]


@pytest.mark.parametrize(
    "body",
    [
        {"messages": [{"role": "user", "content": "a\u0000b"}]},
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "\u0000"}]}]},
        {"messages": [{"role": "user", "content": "hi", "name": "\u0000"}]},
        {"messages": [{"role": "user", "content": "hi"}], "user": "\u0000"},
    ],
    ids=["content", "part", "name", "user"],
)
async def test_text_with_a_nul_character_is_400_not_a_run_that_never_ends(
    scripted_gateway, key, body
):
    # Postgres's text holds any character but NUL: such a run could never be stored.
    status, _, answer = await _post(scripted_gateway, key, json.dumps(body))

    assert status == 400, answer
    assert "x00" in answer["error"]["message"]


@pytest.mark.parametrize(
    "path",
    [
        "/v1/runs?status=null",
        "/v1/runs?limit=null",
        "/v1/runs?agent=a%00b",  # Postgres holds no NUL byte
        "/v1/sessions?limit=%C2%B2",
    ],
)
async def test_a_query_value_is_read_as_written_or_refused(scripted_gateway, key, path):
    status, _, answer = await asyncio.to_thread(
        http, "GET", f"{base_url(scripted_gateway)}{path}", key
    )

    assert status == 400, answer
    assert answer["error"]["code"] == "invalid_request"


def test_the_document_describes_the_streamed_answer_as_server_sent_events(scripted_gateway):
    _, _, document = http("GET", f"{base_url(scripted_gateway)}/openapi.json")

    answers = document["paths"]["/v1/chat/completions"]["post"]["responses"]
    event = answers["200"]["content"]["text/event-stream"]["schema"]
    done, chunk_or_error = event["properties"]["data"]["anyOf"]
    assert done == {"const": "[DONE]"}
    assert chunk_or_error["contentMediaType"] == "application/json"
    payloads = chunk_or_error["contentSchema"]["anyOf"]
    assert {"$ref": "#/components/schemas/ChatCompletionChunk"} in payloads
    assert {"404", "413", "415"} <= set(answers)
