"""`/openapi.json`: a valid OpenAPI 3.1 document, naming every route of the gateway, whose
schemas the gateway's real answers match."""

from __future__ import annotations

import asyncio
import json
import urllib.request
import uuid
from typing import Any

import jsonschema
import pytest
from gateway_testkit import base_url, http, openai_client, scripted_default
from openapi_spec_validator import validate

from revo_chat_gateway.app import create_app
from revo_chat_gateway.settings import GatewaySettings
from revo_core.testing.fixtures import create_api_key
from revo_core.testing.scripted_model import Script, text

ANSWER = "Hello from revo, as documented"
MESSAGES = [{"role": "user", "content": "Say hello"}]


@pytest.fixture(scope="module")
def document(scripted_gateway) -> dict[str, Any]:
    status, _, body = http("GET", f"{base_url(scripted_gateway)}/openapi.json")  # no key
    assert status == 200, body
    return body


@pytest.fixture
async def key(scripted_gateway, scripted_bus) -> str:
    return await create_api_key(scripted_bus, f"t{uuid.uuid4().hex[:8]}")


def check(document: dict, schema_name: str, answer: Any) -> None:
    """Raises if `answer` does not match the document's schema of that name."""
    schema = {"$ref": f"#/components/schemas/{schema_name}", **document}
    jsonschema.Draft202012Validator(schema).validate(answer)


def test_the_document_is_valid_openapi_3_1(document):
    validate(document)
    assert document["openapi"].startswith("3.1")


def test_every_route_of_the_gateway_is_documented(document):
    app = create_app(GatewaySettings(jwt_secret="x" * 32))
    routes = {
        (route.method.lower(), route.resource.canonical)
        for route in app.router.routes()
        if route.method != "HEAD" and not route.resource.canonical.startswith("/static")
    }
    documented = {(method, path) for path, ops in document["paths"].items() for method in ops}

    assert routes == documented


async def test_real_answers_match_their_schemas(
    document, scripted_gateway, scripted_model, scripted_ledger, key
):
    url = base_url(scripted_gateway)
    with scripted_default(scripted_model, Script([text(ANSWER)])):
        raw = await openai_client(scripted_gateway, key).chat.completions.with_raw_response.create(
            model="revo/chatty", messages=MESSAGES
        )
        chunks = await asyncio.to_thread(_streamed_chunks, url, key)
    run_id = raw.headers["X-Revo-Run-Id"]

    answers = {
        "ChatCompletion": json.loads(raw.text),
        "Whoami": http("GET", f"{url}/v1/whoami", key)[2],
        "ModelList": http("GET", f"{url}/v1/models", key)[2],
        "RunListResponse": http("GET", f"{url}/v1/runs", key)[2],
        "RunDetail": http("GET", f"{url}/v1/runs/{run_id}", key)[2],
        "CancelResult": http("POST", f"{url}/v1/runs/{run_id}/cancel", key)[2],
        "SessionList": http("GET", f"{url}/v1/sessions", key)[2],
        "CostReport": http("GET", f"{url}/v1/costs", key)[2],
        "ErrorBody": http("GET", f"{url}/v1/runs/r0000000000", key)[2],
    }
    for name, answer in answers.items():
        check(document, name, answer)
    for chunk in chunks:
        check(document, "ChatCompletionChunk", chunk)
    assert len(chunks) >= 3 and answers["RunDetail"]["run"]["answer"] == ANSWER


def _streamed_chunks(url: str, key: str) -> list[dict]:
    body = json.dumps({"model": "revo/chatty", "messages": MESSAGES, "stream": True}).encode()
    request = urllib.request.Request(f"{url}/v1/chat/completions", data=body, method="POST")
    request.add_header("Authorization", f"Bearer {key}")
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=30) as response:
        events = response.read().decode().split("\n\n")
    data = [e.removeprefix("data: ") for e in events if e.startswith("data: ")]
    assert data[-1] == "[DONE]"
    return [json.loads(d) for d in data[:-1]]
