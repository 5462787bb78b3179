"""The WebSocket chat within the caller's limits: frames per minute, new sessions per minute."""

from __future__ import annotations

import asyncio
import uuid

import aiohttp
import pytest
from gateway_testkit import base_url

from revo_core.testing.fixtures import create_api_key

FRAME_TIMEOUT_S = 15


@pytest.fixture(scope="module")
def tight_gateway(scripted_nats, scripted_runner, gateway_factory):
    """A gateway allowing 6 requests (or frames) and 2 new sessions a minute per caller."""
    return gateway_factory.start(
        scripted_nats.url,
        "gateway-ws-tight",
        REVO_CHAT_GATEWAY_RATE_LIMIT_PER_MINUTE="6",
        REVO_CHAT_GATEWAY_NEW_SESSIONS_PER_MINUTE="2",
    )


@pytest.fixture
async def key(tight_gateway, scripted_bus) -> str:
    return await create_api_key(scripted_bus, f"t{uuid.uuid4().hex[:8]}")


def _ws_url(gateway, key: str) -> str:
    return base_url(gateway).replace("http://", "ws://") + f"/v1/ws?token={key}"


async def _answers(ws, frames: list[dict]) -> list[dict]:
    """Send each frame and read the one frame it gets back."""
    answers = []
    for frame in frames:
        await ws.send_json(frame)
        answers.append(await ws.receive_json(timeout=FRAME_TIMEOUT_S))
    return answers


async def test_frames_past_the_per_minute_limit_are_refused_and_the_socket_stays_open(
    tight_gateway, key
):
    async with aiohttp.ClientSession() as http, http.ws_connect(_ws_url(tight_gateway, key)) as ws:
        # The upgrade took one of the 6; the frames share the rest.
        answers = await _answers(ws, [{"type": "ping"}] * 6)
        still_open = not ws.closed

    assert [a["type"] for a in answers] == ["pong"] * 5 + ["error"]
    assert answers[-1]["code"] == "rate_limited"
    assert "per minute" in answers[-1]["message"]
    assert still_open


async def test_new_sessions_past_the_per_minute_limit_are_refused(tight_gateway, key):
    async with aiohttp.ClientSession() as http, http.ws_connect(_ws_url(tight_gateway, key)) as ws:
        answers = await _answers(ws, [{"type": "hello"}] * 3)

    assert [a["type"] for a in answers] == ["session", "session", "error"]
    assert answers[-1]["code"] == "rate_limited"
    assert "2 new sessions per minute" in answers[-1]["message"]
    assert answers[0]["session_id"] != answers[1]["session_id"]


async def test_a_refused_caller_does_not_hold_up_another(tight_gateway, key, scripted_bus):
    other = await create_api_key(scripted_bus, f"t{uuid.uuid4().hex[:8]}")
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(_ws_url(tight_gateway, key)) as ws:
            await _answers(ws, [{"type": "ping"}] * 6)
        async with http.ws_connect(_ws_url(tight_gateway, other)) as ws:
            answer = await asyncio.wait_for(_answers(ws, [{"type": "ping"}]), FRAME_TIMEOUT_S)

    assert answer == [{"type": "pong"}]
