"""A chat run whose gateway is killed mid-run: a gateway started next adopts the run, so its
items (the answer among them) are stored once each and a resuming client gets them."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import aiohttp
import asyncpg
import pytest
from gateway_testkit import base_url, scripted_default

from revo_chat_gateway.app import SCHEMA_SQL
from revo_chat_gateway.sessions import SessionStore
from revo_contracts.chat import ChatItem
from revo_contracts.runs import RunFinished, RunGetRequest, RunQueued, RunStarted
from revo_core.db import apply_schema
from revo_core.errors import NotFound
from revo_core.runs import get_run, new_run_id
from revo_core.testing.fixtures import create_api_key
from revo_core.testing.scripted_model import Reply, Script

ANSWER = "The answer that outlived its gateway"
WAIT_S = 20
ENDED = ("finished", "failed", "cancelled")


@pytest.fixture
def tenant() -> str:
    return f"t{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def db(postgres):
    conn = await asyncpg.connect(postgres.dsn)
    yield conn
    await conn.close()


def ws_url(gateway, key: str) -> str:
    return base_url(gateway).replace("http://", "ws://") + f"/v1/ws?token={key}"


def start_gateway(gateway_factory, scripted_nats, role: str):
    # A log of its own per test run: the test reads what this process logged.
    return gateway_factory.start(scripted_nats.url, f"gateway-{role}-{uuid.uuid4().hex[:6]}")


async def frames_until(ws, last) -> list[dict]:
    received = []
    async with asyncio.timeout(WAIT_S):
        while True:
            frame = await ws.receive_json()
            received.append(frame)
            if last(frame):
                return received


def is_answer(frame: dict) -> bool:
    return frame["type"] == "item" and frame["kind"] == "assistant"


def is_event(kind: str):
    return lambda frame: frame.get("event", {}).get("type") == kind


async def submit_and_hold(gateway, key: str) -> tuple[str, str, int]:
    """Send a message and wait until its run is in the model (held by the script's gate):
    (session id, run id, seq of the last item the client got)."""
    async with aiohttp.ClientSession() as http, http.ws_connect(ws_url(gateway, key)) as ws:
        await ws.send_json({"type": "message", "content": "Say something lasting"})
        frames = await frames_until(ws, is_event("started"))
    items = [f for f in frames if f["type"] == "item"]
    return frames[0]["session_id"], items[0]["run_id"], items[-1]["seq"]


async def until_run_ended(bus, run_id: str, tenant: str) -> None:
    async with asyncio.timeout(WAIT_S):
        while True:
            try:
                detail = await get_run(bus, RunGetRequest(run_id=run_id, tenant=tenant))
            except NotFound:  # not in the runner's Postgres copy yet
                detail = None
            if detail and detail.run.status in ENDED:
                return
            await asyncio.sleep(0.1)


async def stored_items(db, session_id: str) -> list[dict]:
    rows = await db.fetch(
        "SELECT body::text FROM gateway.session_items WHERE session_id = $1 ORDER BY seq",
        session_id,
    )
    return [json.loads(row[0]) for row in rows]


async def until_answer_stored(db, session_id: str) -> None:
    end = time.monotonic() + WAIT_S
    while not any(i["kind"] == "assistant" for i in await stored_items(db, session_id)):
        assert time.monotonic() < end, "the answer was not stored"
        await asyncio.sleep(0.1)


def assert_each_item_once(items: list[dict], run_id: str) -> None:
    """Numbered 1..n without a hole; the run's user item, each of its events in order and
    its answer, once each."""
    assert [i["seq"] for i in items] == list(range(1, len(items) + 1))
    assert [i["kind"] for i in items if i["kind"] != "event"] == ["user", "assistant"]
    event_seqs = [i["event"]["seq"] for i in items if i["kind"] == "event"]
    assert event_seqs == list(range(1, len(event_seqs) + 1))
    events = [i["event"]["type"] for i in items if i["kind"] == "event"]
    assert events[:2] == ["queued", "started"] and events[-1] == "finished"
    assert all(i["run_id"] == run_id for i in items)
    assert [i["content"] for i in items if i["kind"] == "assistant"] == [ANSWER]


def adopted_runs(gateway) -> list[str]:
    lines = gateway.log_file.read_text(errors="replace").splitlines()
    entries = [json.loads(line) for line in lines if line.startswith("{")]
    return [e["run_id"] for e in entries if e.get("event") == "chat run adopted"]


async def test_a_run_whose_gateway_was_killed_is_stored_by_the_next_and_resumed(
    gateway_factory, scripted_nats, scripted_runner, scripted_model, scripted_bus, tenant, db
):
    killed = start_gateway(gateway_factory, scripted_nats, "killed")
    key = await create_api_key(scripted_bus, tenant)
    gate = asyncio.Event()
    with scripted_default(scripted_model, Script([Reply(text=ANSWER, gate=gate)])):
        session_id, run_id, seen_seq = await submit_and_hold(killed, key)
        killed.kill()  # SIGKILL: no cleanup, its follow task dies with it
        gate.set()
        await until_run_ended(scripted_bus, run_id, tenant)
    # The run ended in the agent-runner, but nobody stored its end.
    assert not any(i["kind"] == "assistant" for i in await stored_items(db, session_id))

    restarted = start_gateway(gateway_factory, scripted_nats, "restarted")
    async with aiohttp.ClientSession() as http, http.ws_connect(ws_url(restarted, key)) as ws:
        await ws.send_json({"type": "hello", "session_id": session_id, "last_seq": seen_seq})
        resumed = await frames_until(ws, is_answer)
        await ws.send_json({"type": "hello", "session_id": session_id})
        replayed = [f for f in await frames_until(ws, is_answer) if f["type"] == "item"]

    assert resumed[0]["type"] == "session"
    got = [f for f in resumed if f["type"] == "item"]
    assert [i["seq"] for i in got] == list(range(seen_seq + 1, seen_seq + 1 + len(got)))
    assert got[-1]["content"] == ANSWER
    stored = await stored_items(db, session_id)
    assert_each_item_once(stored, run_id)
    assert replayed == stored
    assert run_id in adopted_runs(restarted)


async def test_two_gateways_adopting_one_run_store_each_item_once(
    gateway_factory, scripted_nats, scripted_runner, scripted_model, scripted_bus, tenant, db
):
    killed = start_gateway(gateway_factory, scripted_nats, "killed")
    key = await create_api_key(scripted_bus, tenant)
    gate = asyncio.Event()
    with scripted_default(scripted_model, Script([Reply(text=ANSWER, gate=gate)])):
        session_id, run_id, _ = await submit_and_hold(killed, key)
        killed.kill()
        # Both start while the run is still held: each replays its log, then follows it live.
        replicas = await asyncio.gather(
            asyncio.to_thread(start_gateway, gateway_factory, scripted_nats, "replica-a"),
            asyncio.to_thread(start_gateway, gateway_factory, scripted_nats, "replica-b"),
        )
        await until_adopted(replicas, run_id)
        gate.set()
        await until_answer_stored(db, session_id)
    # Stopped, neither writes any more: what is stored now is all there will be.
    await asyncio.gather(*(asyncio.to_thread(r.stop, 10) for r in replicas))

    assert_each_item_once(await stored_items(db, session_id), run_id)


async def test_an_adopted_run_past_its_deadline_is_cancelled_and_its_end_stored_later(
    gateway_factory, scripted_nats, scripted_runner, scripted_model, scripted_bus, tenant, db
):
    killed = start_gateway(gateway_factory, scripted_nats, "killed")
    key = await create_api_key(scripted_bus, tenant)
    gate = asyncio.Event()
    with scripted_default(scripted_model, Script([Reply(text=ANSWER, gate=gate)])):
        session_id, run_id, _ = await submit_and_hold(killed, key)
        killed.kill()
        # Its message is older than a second: past this gateway's deadline at once.
        strict = gateway_factory.start(
            scripted_nats.url, f"gateway-strict-{uuid.uuid4().hex[:6]}",
            REVO_CHAT_GATEWAY_RUN_TIMEOUT_S="1",
        )  # fmt: skip
        try:
            await until_adopted([strict], run_id)
            await until_run_ended(scripted_bus, run_id, tenant)  # held by the gate: cancelled
        finally:
            await asyncio.to_thread(strict.stop, 10)
    detail = await get_run(scripted_bus, RunGetRequest(run_id=run_id, tenant=tenant))
    assert detail.run.status == "cancelled"

    # The cancel ended the follow before the run's last event: the next start stores it.
    start_gateway(gateway_factory, scripted_nats, "next")
    end = time.monotonic() + WAIT_S
    while (events := await stored_events(db, session_id))[-1]["type"] != "cancelled":
        assert time.monotonic() < end, f"the run's end was not stored: {events}"
        await asyncio.sleep(0.1)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))


async def stored_events(db, session_id: str) -> list[dict]:
    return [i["event"] for i in await stored_items(db, session_id) if i["kind"] == "event"]


async def until_adopted(replicas, run_id: str) -> None:
    end = time.monotonic() + WAIT_S
    while not all(run_id in adopted_runs(r) for r in replicas):
        assert time.monotonic() < end, "a replica did not adopt the run"
        await asyncio.sleep(0.1)


async def test_stores_of_two_replicas_writing_one_run_at_once_keep_each_item_once(postgres):
    pools = [await asyncpg.create_pool(postgres.dsn, min_size=1, max_size=2) for _ in range(2)]
    try:
        await apply_schema(pools[0], SCHEMA_SQL.read_text())
        replica_a, replica_b = (SessionStore(pool) for pool in pools)
        session_id = await replica_a.create("acme", "api_key:k1")
        runs = [new_run_id() for _ in range(6)]
        for run_id in runs:
            items = run_items(run_id, events=12)
            # The same items in other batches, as two followers of one run store them.
            await asyncio.gather(
                append_in_batches(replica_a, session_id, items, size=1),
                append_in_batches(replica_b, session_id, items, size=5),
            )
            again = await replica_a.append(session_id, items)  # a replay from the log
            assert again == []

        stored = await replica_b.items_after(session_id, 0)
    finally:
        await asyncio.gather(*(pool.close() for pool in pools))

    assert [i.seq for i in stored] == list(range(1, len(stored) + 1))
    for run_id in runs:
        of_run = [i for i in stored if i.run_id == run_id]
        assert [i.kind for i in of_run if i.kind != "event"] == ["user", "assistant"]
        assert [i.event.seq for i in of_run if i.event is not None] == list(range(1, 13))


def run_items(run_id: str, events: int) -> list[ChatItem]:
    def event(seq: int):
        args = {"run_id": run_id, "tenant": "acme", "seq": seq, "ts": time.time()}
        if seq == 1:
            return RunQueued(agent="assistant", **args)
        if seq == events:
            return RunFinished(answer="done", **args)
        return RunStarted(runner_id="runner-1", **args)

    user = ChatItem(seq=1, kind="user", run_id=run_id, agent="assistant", content="hi")
    answer = ChatItem(seq=1, kind="assistant", run_id=run_id, agent="assistant", content="done")
    logged = [event(seq) for seq in range(1, events + 1)]
    middle = [ChatItem(seq=1, kind="event", run_id=run_id, event=e) for e in logged]
    return [user, *middle, answer]


async def append_in_batches(
    store: SessionStore, session_id: str, items: list[ChatItem], size: int
) -> None:
    for start in range(0, len(items), size):
        await store.append(session_id, items[start : start + size])
