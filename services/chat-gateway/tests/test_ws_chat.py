"""WebSocket chat at /v1/ws, driven by aiohttp's client over real runs (scripted model)."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import uuid
from typing import Any

import aiohttp
import pytest
from gateway_testkit import base_url, scripted_default

from revo_contracts.runs import RunGetRequest, RunListRequest
from revo_core.errors import NotFound
from revo_core.runs import get_run, list_runs
from revo_core.testing.fixtures import create_api_key
from revo_core.testing.scripted_model import Reply, Script, text

ANSWER = "Hello from revo over a socket"
FRAME_TIMEOUT_S = 15
ENDED = ("finished", "failed", "cancelled")


@pytest.fixture
def tenant() -> str:
    return f"t{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def key(scripted_gateway, scripted_bus, tenant) -> str:
    return await create_api_key(scripted_bus, tenant)


@pytest.fixture
def answers(scripted_model):
    with scripted_default(scripted_model, Script([text(ANSWER)])):
        yield


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as session:
        yield session


def ws_url(gateway, key: str | None = None) -> str:
    url = base_url(gateway).replace("http://", "ws://") + "/v1/ws"
    return f"{url}?token={key}" if key else url


async def frames_until(ws, last: Any) -> list[dict]:
    """Frames received up to and including the first for which `last(frame)` holds."""
    received = []
    async with asyncio.timeout(FRAME_TIMEOUT_S):
        while True:
            frame = await ws.receive_json()
            received.append(frame)
            if last(frame):
                return received


def is_answer(frame: dict) -> bool:
    return frame["type"] == "item" and frame["kind"] == "assistant"


def items(frames: list[dict]) -> list[dict]:
    return [f for f in frames if f["type"] == "item"]


async def test_a_message_streams_tokens_then_the_answer_as_numbered_items(
    scripted_gateway, key, answers, http
):
    async with http.ws_connect(ws_url(scripted_gateway, key)) as ws:
        await ws.send_json({"type": "message", "content": "Say hello"})
        frames = await frames_until(ws, is_answer)

    assert frames[0]["type"] == "session" and frames[0]["last_seq"] == 0
    stored = items(frames)
    assert [item["seq"] for item in stored] == list(range(1, len(stored) + 1))
    assert stored[0]["kind"] == "user" and stored[0]["content"] == "Say hello"
    assert stored[0]["agent"] == "assistant"
    assert stored[-1]["content"] == ANSWER
    events = [item["event"]["type"] for item in stored if item["kind"] == "event"]
    assert events[0] == "queued" and events[-1] == "finished"
    tokens = [f for f in frames if f["type"] == "token"]
    assert "".join(t["delta"] for t in tokens) == ANSWER
    assert frames.index(tokens[-1]) < frames.index(stored[-1])


async def test_an_at_prefix_sends_the_message_to_that_agent(
    scripted_gateway, scripted_bus, key, tenant, answers, http
):
    async with http.ws_connect(ws_url(scripted_gateway, key)) as ws:
        await ws.send_json({"type": "message", "content": "@chatty hello"})
        frames = await frames_until(ws, is_answer)

    user = items(frames)[0]
    assert (user["agent"], user["content"]) == ("chatty", "hello")
    detail = await get_run(scripted_bus, RunGetRequest(run_id=user["run_id"], tenant=tenant))
    assert detail.run.agent == "chatty"
    assert detail.run.session_id == frames[0]["session_id"]


async def test_a_second_message_s_run_sees_the_conversation_so_far(
    scripted_gateway, scripted_model, key, answers, http
):
    async with http.ws_connect(ws_url(scripted_gateway, key)) as ws:
        await ws.send_json({"type": "message", "content": "first"})
        await frames_until(ws, is_answer)
        await ws.send_json({"type": "message", "content": "second"})
        second = items(await frames_until(ws, is_answer))

    request = scripted_model.requests_of(second[0]["run_id"])[0]
    said = [(m.role, m.content) for m in request.messages if m.role != "system"]
    assert said == [("user", "first"), ("assistant", ANSWER), ("user", "second")]


async def test_a_client_that_reconnects_gets_exactly_the_items_it_missed(
    scripted_gateway, scripted_model, scripted_bus, key, tenant, http
):
    gate = asyncio.Event()
    with scripted_default(scripted_model, Script([Reply(text=ANSWER, gate=gate)])):
        async with http.ws_connect(ws_url(scripted_gateway, key)) as ws:
            await ws.send_json({"type": "message", "content": "Say hello"})
            before = await frames_until(ws, lambda f: f["type"] == "item" and f["seq"] == 2)
        session_id = before[0]["session_id"]
        gate.set()
        await _until_run_ended(scripted_bus, items(before)[0]["run_id"], tenant)

        async with http.ws_connect(ws_url(scripted_gateway, key)) as ws:
            await ws.send_json({"type": "hello", "session_id": session_id, "last_seq": 2})
            after = await frames_until(ws, is_answer)
            await ws.send_json({"type": "hello", "session_id": session_id})
            everything = items(await frames_until(ws, is_answer))

    assert (after[0]["type"], after[0]["session_id"]) == ("session", session_id)
    missed = items(after)
    assert [item["seq"] for item in missed] == list(range(3, len(missed) + 3))
    assert items(before) + missed == everything
    assert missed[-1]["content"] == ANSWER


async def test_a_client_that_reconnects_mid_run_gets_what_it_missed_then_the_rest_live(
    scripted_gateway, scripted_model, key, http
):
    gate = asyncio.Event()
    with scripted_default(scripted_model, Script([Reply(text=ANSWER, gate=gate)])):
        async with http.ws_connect(ws_url(scripted_gateway, key)) as ws:
            await ws.send_json({"type": "message", "content": "Say hello"})
            before = await frames_until(ws, lambda f: f["type"] == "item" and f["seq"] == 1)
            await frames_until(ws, lambda f: f.get("event", {}).get("type") == "started")
        session_id = before[0]["session_id"]

        async with http.ws_connect(ws_url(scripted_gateway, key)) as ws:
            await ws.send_json({"type": "hello", "session_id": session_id, "last_seq": 1})
            joined = await frames_until(ws, lambda f: f["type"] == "session")
            # Up to the replay's last item: the socket is in the live feed from then on.
            last_seq = joined[-1]["last_seq"]
            joined += await frames_until(ws, lambda f: f.get("seq") == last_seq)
            gate.set()  # the run goes on while the client is back
            after = joined + await frames_until(ws, is_answer)
            await ws.send_json({"type": "hello", "session_id": session_id})
            everything = items(await frames_until(ws, is_answer))

    seen = items(before) + items(after)
    assert [item["seq"] for item in seen] == list(range(1, len(seen) + 1))
    assert seen == everything
    tokens = [f["delta"] for f in after if f["type"] == "token"]
    assert "".join(tokens) == ANSWER and seen[-1]["content"] == ANSWER


async def test_cancel_stops_the_session_s_running_run(scripted_gateway, scripted_model, key, http):
    gate = asyncio.Event()
    with scripted_default(scripted_model, Script([Reply(text=ANSWER, gate=gate)])):
        try:
            async with http.ws_connect(ws_url(scripted_gateway, key)) as ws:
                await ws.send_json({"type": "message", "content": "Say hello"})
                # Right after the run's first event, before a runner may hold it.
                await frames_until(ws, lambda f: f.get("kind") == "event")
                await ws.send_json({"type": "cancel"})
                frames = await frames_until(ws, lambda f: f.get("event", {}).get("type") in ENDED)
        finally:
            gate.set()  # a failed test leaves no run waiting on the shared model

    assert frames[-1]["event"]["type"] == "cancelled"
    assert not any(is_answer(f) for f in frames)


async def test_cancel_without_a_run_is_not_found(scripted_gateway, key, http):
    async with http.ws_connect(ws_url(scripted_gateway, key)) as ws:
        await ws.send_json({"type": "cancel", "run_id": "r0000000000"})
        error = await ws.receive_json(timeout=FRAME_TIMEOUT_S)

    assert (error["type"], error["code"]) == ("error", "not_found")


async def _until_run_ended(bus, run_id: str, tenant: str) -> None:
    async with asyncio.timeout(FRAME_TIMEOUT_S):
        while True:
            try:
                detail = await get_run(bus, RunGetRequest(run_id=run_id, tenant=tenant))
            except NotFound:  # not in the runner's Postgres copy yet
                detail = None
            if detail and detail.run.status in ENDED:
                return
            await asyncio.sleep(0.1)


async def test_another_tenant_s_session_reads_as_absent(
    scripted_gateway, scripted_bus, key, answers, http
):
    async with http.ws_connect(ws_url(scripted_gateway, key)) as ws:
        await ws.send_json({"type": "message", "content": "mine"})
        session_id = (await frames_until(ws, is_answer))[0]["session_id"]
    stranger = await create_api_key(scripted_bus, f"t{uuid.uuid4().hex[:8]}")

    async with http.ws_connect(ws_url(scripted_gateway, stranger)) as ws:
        await ws.send_json({"type": "hello", "session_id": session_id})
        error = await ws.receive_json(timeout=FRAME_TIMEOUT_S)
        await ws.send_json({"type": "ping"})
        pong = await ws.receive_json(timeout=FRAME_TIMEOUT_S)

    assert error["type"] == "error" and error["code"] == "not_found"
    assert pong == {"type": "pong"}


async def test_sessions_lists_the_tenant_s_sessions_with_titles_newest_first(
    scripted_gateway, scripted_bus, key, answers, http
):
    opened = []
    for first in ("first chat", "second chat " + "x" * 100):
        async with http.ws_connect(ws_url(scripted_gateway, key)) as ws:
            await ws.send_json({"type": "message", "content": first})
            opened.append((await frames_until(ws, is_answer))[0]["session_id"])
    async with http.ws_connect(ws_url(scripted_gateway, key)) as ws:  # never written to
        await ws.send_json({"type": "hello"})
        await ws.receive_json(timeout=FRAME_TIMEOUT_S)
    stranger = await create_api_key(scripted_bus, f"t{uuid.uuid4().hex[:8]}")

    listed = await _get_json(http, scripted_gateway, "/v1/sessions", key)
    limited = await _get_json(http, scripted_gateway, "/v1/sessions?limit=1", key)
    of_stranger = await _get_json(http, scripted_gateway, "/v1/sessions", stranger)
    bad_limit = await _get_json(http, scripted_gateway, "/v1/sessions?limit=0", key)

    sessions = listed[1]["data"]
    assert [s["id"] for s in sessions] == opened[::-1]
    assert sessions[1]["title"] == "first chat"
    assert sessions[0]["title"] == ("second chat " + "x" * 100)[:80]
    assert all(s["last_seq"] >= 3 and s["updated_at"] >= s["created_at"] for s in sessions)
    assert [s["id"] for s in limited[1]["data"]] == opened[-1:]
    assert of_stranger == (200, {"object": "list", "data": []})
    assert bad_limit[0] == 400 and bad_limit[1]["error"]["code"] == "invalid_request"


async def _get_json(http, gateway, path: str, key: str) -> tuple[int, dict]:
    headers = {"Authorization": f"Bearer {key}"}
    async with http.get(base_url(gateway) + path, headers=headers) as response:
        return response.status, await response.json()


@pytest.mark.parametrize(
    ("frame", "named"),
    [
        ("{not json", "not valid JSON"),
        ('{"type": "dance"}', "type"),
        ('{"type": "message"}', "content"),
        ('{"type": "message", "content": "hi", "traceparent": "nope"}', "traceparent"),
        # Postgres numbers items with 4-byte integers.
        ('{"type": "hello", "last_seq": 2147483648}', "last_seq"),
        ('{"type": "message", "content": "hi", "x": ' + "[" * 20_000 + "]" * 20_000 + "}", "deep"),
        ('{"type": "message", "content": "a\\u0000b"}', "content"),  # Postgres holds no NUL
    ],
    ids=["malformed", "unknown-type", "no-content", "bad-traceparent", "huge-seq", "deep", "nul"],
)
async def test_a_bad_frame_is_answered_and_the_socket_stays_open(
    scripted_gateway, key, http, frame, named
):
    async with http.ws_connect(ws_url(scripted_gateway, key)) as ws:
        await ws.send_str(frame)
        error = await ws.receive_json(timeout=FRAME_TIMEOUT_S)
        await ws.send_json({"type": "ping"})
        pong = await ws.receive_json(timeout=FRAME_TIMEOUT_S)

    assert error["type"] == "error" and error["code"] == "invalid_request"
    assert named in error["message"]
    assert pong == {"type": "pong"}


async def test_an_oversized_frame_closes_the_socket_with_1009(scripted_gateway, key, http):
    async with http.ws_connect(ws_url(scripted_gateway, key)) as ws:
        content = "x" * (256 * 1024 + 1)
        await ws.send_json({"type": "message", "content": content})
        closing = await ws.receive(timeout=FRAME_TIMEOUT_S)

    assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    assert ws.close_code == 1009
    async with http.ws_connect(ws_url(scripted_gateway, key)) as ws:
        await ws.send_json({"type": "ping"})
        assert await ws.receive_json(timeout=FRAME_TIMEOUT_S) == {"type": "pong"}


async def test_no_credentials_is_refused_at_the_handshake(scripted_gateway, http):
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await http.ws_connect(ws_url(scripted_gateway))
    assert refused.value.status == 401
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await http.ws_connect(ws_url(scripted_gateway, "revo_0123456789abcdef_wrong"))
    assert refused.value.status == 401


async def test_a_header_credential_works_too(scripted_gateway, key, http):
    headers = {"Authorization": f"Bearer {key}"}
    async with http.ws_connect(ws_url(scripted_gateway), headers=headers) as ws:
        await ws.send_json({"type": "ping"})
        assert await ws.receive_json(timeout=FRAME_TIMEOUT_S) == {"type": "pong"}


# -- a session watched through two gateway replicas ---------------------------------------


@pytest.fixture(scope="module")
def second_gateway(scripted_nats, scripted_runner, gateway_factory):
    return gateway_factory.start(scripted_nats.url, "gateway-ws-second")


async def test_a_socket_on_another_replica_gets_the_run_live_and_every_item_once(
    scripted_gateway, second_gateway, scripted_model, key, http
):
    gate = asyncio.Event()
    words = ["Streamed", " across", " two", " replicas"]
    with scripted_default(scripted_model, Script([Reply(text="".join(words), gate=gate)])):
        async with http.ws_connect(ws_url(scripted_gateway, key)) as first:
            await first.send_json({"type": "message", "content": "Say hello"})
            started = await frames_until(first, lambda f: f.get("kind") == "event")
            session_id = started[0]["session_id"]
            async with http.ws_connect(ws_url(second_gateway, key)) as second:
                await second.send_json({"type": "hello", "session_id": session_id})
                joined = await frames_until(second, lambda f: f["type"] == "session")
                # The replay's last item: the socket is in the session's live feed then.
                last_seq = joined[-1]["last_seq"]
                joined += await frames_until(second, lambda f: f.get("seq") == last_seq)
                gate.set()
                seen_by_second = joined + await frames_until(second, is_answer)
            seen_by_first = started + await frames_until(first, is_answer)

    assert items(seen_by_second) == items(seen_by_first)
    seqs = [item["seq"] for item in items(seen_by_second)]
    assert seqs == list(range(1, len(seqs) + 1))
    tokens = [f["delta"] for f in seen_by_second if f["type"] == "token"]
    assert "".join(tokens) == "".join(words)


# -- a client that never reads ------------------------------------------------------------

# Each message's user item comes back to the socket: 40 of 200 KB are more than the
# kernel's socket buffers (4 MB at most) hold unread.
BIG_MESSAGE = "x" * 200_000
MESSAGES = 40


@pytest.fixture(scope="module")
def slow_gateway(scripted_nats, scripted_runner, gateway_factory):
    return gateway_factory.start(
        scripted_nats.url,
        "gateway-ws-slow",
        REVO_CHAT_GATEWAY_WS_QUEUE_FRAMES="16",
        REVO_CHAT_GATEWAY_MAX_CONCURRENT_RUNS="1000",
    )


async def test_a_client_that_never_reads_is_closed_and_its_session_goes_on(
    slow_gateway, scripted_gateway, scripted_bus, key, tenant, answers, http
):
    sock = await _raw_socket(slow_gateway.http_port, key)
    frame = _client_frame({"type": "message", "content": BIG_MESSAGE})
    await _send(sock, frame)
    start = await _read_until(sock, re.compile(rb'"session_id":"([^"]+)"'))
    session_id = re.search(rb'"session_id":"([^"]+)"', start).group(1).decode()
    async with asyncio.timeout(FRAME_TIMEOUT_S * 2):  # a gateway that stops reading fails
        for _ in range(MESSAGES - 1):
            if not await _send(sock, frame):
                break  # closed already
    await _until_runs_stop_coming(scripted_bus, tenant, session_id)

    async with asyncio.timeout(FRAME_TIMEOUT_S):  # the gateway closed it: EOF comes
        received = await _read_to_end(sock)
    sock.close()

    assert len(received) < len(BIG_MESSAGE) * MESSAGES  # it was not sent everything
    async with http.ws_connect(ws_url(scripted_gateway, key)) as ws:
        await ws.send_json({"type": "hello", "session_id": session_id})
        session = await ws.receive_json(timeout=FRAME_TIMEOUT_S)
        stored = await frames_until(ws, lambda f: f.get("seq") == session["last_seq"])
    assert [item["seq"] for item in items(stored)] == list(range(1, session["last_seq"] + 1))
    assert items(stored)[0]["content"] == BIG_MESSAGE


async def _until_runs_stop_coming(bus, tenant: str, session_id: str) -> None:
    """Until the gateway has taken every message it will take (no new run for a second)."""
    wanted = RunListRequest(tenant=tenant, session_id=session_id, limit=MESSAGES)
    seen = -1
    async with asyncio.timeout(FRAME_TIMEOUT_S * 2):
        while (count := len((await list_runs(bus, wanted)).runs)) != seen:
            seen = count
            await asyncio.sleep(1.0)


async def _send(sock: socket.socket, data: bytes) -> bool:
    try:
        await asyncio.get_running_loop().sock_sendall(sock, data)
    except ConnectionError:
        return False
    return True


async def _raw_socket(port: int, key: str) -> socket.socket:
    """A WebSocket handshake over a socket with a tiny receive buffer, read only on demand."""
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", port))
    await loop.sock_sendall(
        sock,
        f"GET /v1/ws?token={key} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode(),
    )
    response = await _read_until(sock, re.compile(rb"\r\n\r\n"))
    assert response.startswith(b"HTTP/1.1 101"), response
    return sock


async def _read_until(sock: socket.socket, pattern: re.Pattern) -> bytes:
    """Bytes read a few at a time until `pattern` is in them (reads no further ahead)."""
    received = b""
    async with asyncio.timeout(FRAME_TIMEOUT_S):
        while not pattern.search(received):
            received += await asyncio.get_running_loop().sock_recv(sock, 64)
    return received


def _client_frame(payload: dict) -> bytes:
    """One masked text frame (a zero mask: the payload goes as is)."""
    data = json.dumps(payload).encode()
    return bytes([0x81, 0x80 | 127]) + len(data).to_bytes(8, "big") + b"\0\0\0\0" + data


async def _read_to_end(sock: socket.socket) -> bytes:
    chunks = []
    try:
        while chunk := await asyncio.get_running_loop().sock_recv(sock, 2**16):
            chunks.append(chunk)
    except ConnectionResetError:
        pass
    return b"".join(chunks)
