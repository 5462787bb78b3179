"""Every error the gateway answers is in OpenAI's shape and names no Python exception."""

from __future__ import annotations

import asyncio
import uuid

import aiohttp
import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from gateway_testkit import base_url, http
from structlog.testing import capture_logs

from revo_chat_gateway.http_errors import error_middleware, mark_answer_began
from revo_chat_gateway.http_tracing import tracing_middleware
from revo_contracts import subjects
from revo_core import headers
from revo_core.embedded.ports import free_port
from revo_core.testing.fixtures import create_api_key


def _openai_error(body: object) -> dict:
    assert isinstance(body, dict) and set(body) == {"error"}, body
    assert set(body["error"]) == {"message", "type", "code"}, body
    return body["error"]


async def test_an_unexpected_exception_is_logged_with_its_trace_and_answered_internal():
    async def broken(_: web.Request) -> web.Response:
        raise KeyError("secret-detail-of-the-bug")

    app = web.Application(middlewares=[tracing_middleware, error_middleware])
    app.router.add_get("/v1/broken", broken)
    trace_id = uuid.uuid4().hex
    with capture_logs() as logs:
        async with TestClient(TestServer(app)) as client:
            response = await client.get(
                "/v1/broken", headers={"traceparent": f"00-{trace_id}-{'2' * 16}-01"}
            )
            body = await response.json()

    assert response.status == 500
    error = _openai_error(body)
    assert error["code"] == "internal"
    assert "secret-detail" not in error["message"] and "KeyError" not in error["message"]
    assert trace_id in error["message"]
    failed = [line for line in logs if line["event"] == "request failed"]
    assert failed and failed[0]["path"] == "/v1/broken" and failed[0].get("exc_info")


async def test_a_database_that_cannot_be_reached_is_a_503_to_retry_not_an_internal_error():
    # What the gateway met while Postgres restarted under bench/chaos.py: the key lookup's
    # connection refused. Here a real connection to a port where nothing listens.
    async def looks_up(_: web.Request) -> web.Response:
        await asyncpg.connect(f"postgresql://revo@127.0.0.1:{free_port()}/revo", timeout=2)
        return web.json_response({})

    app = web.Application(middlewares=[tracing_middleware, error_middleware])
    app.router.add_get("/v1/keys-lookup", looks_up)
    async with TestClient(TestServer(app)) as client:
        response = await client.get("/v1/keys-lookup")
        body = await response.json()

    assert response.status == 503
    assert response.headers["Retry-After"] == "2"
    error = _openai_error(body)
    assert error["code"] == "overloaded"
    assert "Errno" not in error["message"] and "Refused" not in error["message"]


async def test_an_exception_once_a_stream_began_cuts_it_short_without_a_second_answer():
    async def half_stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b"data: first\n\n")
        raise KeyError("secret-detail-of-the-bug")

    app = web.Application(middlewares=[error_middleware])
    app.on_response_prepare.append(mark_answer_began)
    app.router.add_get("/v1/half", half_stream)
    async with TestClient(TestServer(app)) as client:
        response = await client.get("/v1/half")
        with pytest.raises(aiohttp.ClientPayloadError):
            await response.read()

    assert response.status == 200
    assert response.content_type == "text/event-stream"


async def test_a_body_over_the_size_limit_is_a_413_in_openais_shape(scripted_gateway, scripted_bus):
    key = await create_api_key(scripted_bus, "acme")
    huge = {"messages": [{"role": "user", "content": "x" * 300_000}]}

    status, _, body = await asyncio.to_thread(
        http, "POST", f"{base_url(scripted_gateway)}/v1/chat/completions", key, huge
    )

    assert status == 413
    assert _openai_error(body)["code"] == "invalid_request"


async def test_no_route_and_a_wrong_method_answer_in_openais_shape(scripted_gateway, scripted_bus):
    key = await create_api_key(scripted_bus, "acme")
    url = base_url(scripted_gateway)

    missing = await asyncio.to_thread(http, "GET", f"{url}/v1/nothing-here", key)
    wrong = await asyncio.to_thread(http, "DELETE", f"{url}/v1/runs", key)

    assert missing[0] == 404 and _openai_error(missing[2])["code"] == "not_found"
    assert wrong[0] == 405 and _openai_error(wrong[2])["code"] == "invalid_request"
    assert "GET" in wrong[1]["Allow"]


@pytest.fixture(scope="module")
def lone_gateway(nats_server, gateway_factory):
    """A gateway on a NATS of its own, where the test plays the cost ledger."""
    return gateway_factory.start(nats_server.url, "gateway-lone")


async def test_another_services_internal_error_reaches_the_client_without_its_text(
    lone_gateway, bus
):
    leaked = "ZeroDivisionError: division by zero at ledger.py:42"

    async def broken_ledger(msg) -> None:
        await bus.nc.publish(
            msg.reply,
            f'{{"code":"internal","message":"{leaked}"}}'.encode(),
            headers={headers.ERROR_CODE: "internal", headers.ERROR_MESSAGE: leaked},
        )

    sub = await bus.nc.subscribe(subjects.LEDGER_REPORT, cb=broken_ledger)
    try:
        key = await create_api_key(bus, "acme")
        status, _, body = await asyncio.to_thread(
            http, "GET", f"{base_url(lone_gateway)}/v1/costs", key
        )
    finally:
        await sub.unsubscribe()

    assert status == 500
    error = _openai_error(body)
    assert error["code"] == "internal"
    assert "ZeroDivision" not in error["message"] and "ledger.py" not in error["message"]
