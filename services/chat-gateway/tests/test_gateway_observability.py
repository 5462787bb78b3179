"""The gateway continues the caller's trace and counts its requests."""

from __future__ import annotations

import asyncio
import secrets
import urllib.request

import aiohttp
from gateway_testkit import base_url, scripted_default

from revo_core.testing.fixtures import create_api_key
from revo_core.testing.metrics import metric_value
from revo_core.testing.scripted_model import Script, text


def _get(url: str, key: str, traceparent: str) -> int:
    request = urllib.request.Request(url)
    request.add_header("Authorization", f"Bearer {key}")
    request.add_header("traceparent", traceparent)
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status


async def test_a_request_continues_the_callers_trace_and_is_counted(
    scripted_gateway, scripted_bus, otlp_receiver
):
    key = await create_api_key(scripted_bus, "acme")
    trace_id = secrets.token_hex(16)
    before = metric_value(
        scripted_gateway, "revo_http_requests_total", route="/v1/whoami", status="200"
    )

    status = await asyncio.to_thread(
        _get, f"{base_url(scripted_gateway)}/v1/whoami", key, f"00-{trace_id}-{'1' * 16}-01"
    )

    assert status == 200
    span = await asyncio.to_thread(otlp_receiver.wait_for, trace_id, "GET /v1/whoami")
    assert span.service == "chat-gateway"
    assert span.attributes["http.response.status_code"] == 200
    after = metric_value(
        scripted_gateway, "revo_http_requests_total", route="/v1/whoami", status="200"
    )
    assert after == before + 1


async def test_websocket_chat_is_counted(scripted_gateway, scripted_bus, scripted_model):
    key = await create_api_key(scripted_bus, "acme")
    url = base_url(scripted_gateway).replace("http://", "ws://") + f"/v1/ws?token={key}"
    messages_before = metric_value(scripted_gateway, "revo_ws_messages_total")
    tokens_before = metric_value(scripted_gateway, "revo_ws_frames_sent_total", type="token")
    open_before = metric_value(scripted_gateway, "revo_ws_connections")

    with scripted_default(scripted_model, Script([text("Counted, token by token")])):
        async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
            await ws.send_json({"type": "message", "content": "count me"})
            open_during = metric_value(scripted_gateway, "revo_ws_connections")
            async with asyncio.timeout(15):
                while (await ws.receive_json()).get("kind") != "assistant":
                    pass

    assert open_during == open_before + 1
    assert metric_value(scripted_gateway, "revo_ws_messages_total") == messages_before + 1
    tokens = metric_value(scripted_gateway, "revo_ws_frames_sent_total", type="token")
    assert tokens > tokens_before
