"""Owners: a member sees and joins only their own sessions and runs, an admin the whole
tenant's; someone else's reads as absent (404), exactly as an unknown one."""

from __future__ import annotations

import asyncio
import uuid

import aiohttp
import asyncpg
import pytest
from gateway_testkit import base_url, hs256_token, http, openai_client, scripted_default

from revo_chat_gateway.app import SCHEMA_SQL
from revo_contracts.runs import RunSubmit
from revo_core.db import apply_schema
from revo_core.runs import submit_run
from revo_core.testing.fixtures import create_api_key
from revo_core.testing.scripted_model import Script, text

ANSWER = "an answer"
FRAME_TIMEOUT_S = 15
MESSAGES = [{"role": "user", "content": "Say hello"}]
# The gateway's schema before owners and the roles viewer and ci.
SCHEMA_BEFORE_OWNERS = """
CREATE SCHEMA IF NOT EXISTS gateway;
CREATE TABLE IF NOT EXISTS gateway.api_keys (
    key_id       text PRIMARY KEY,
    tenant       text NOT NULL,
    role         text NOT NULL CHECK (role IN ('admin', 'member')),
    secret_hash  bytea NOT NULL,
    name         text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz
);
CREATE TABLE IF NOT EXISTS gateway.sessions (
    session_id   text PRIMARY KEY,
    tenant       text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
"""


@pytest.fixture
def tenant() -> str:
    return f"t{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def people(scripted_gateway, scripted_bus, tenant) -> dict[str, str]:
    return {
        "alice": await create_api_key(scripted_bus, tenant, "member"),
        "bob": await create_api_key(scripted_bus, tenant, "member"),
        "admin": await create_api_key(scripted_bus, tenant, "admin"),
    }


@pytest.fixture
def answers(scripted_model):
    with scripted_default(scripted_model, Script([text(ANSWER)])):
        yield


async def test_a_member_sees_and_joins_only_their_own_sessions_and_an_admin_all(
    scripted_gateway, people, answers
):
    alices = await _chat(scripted_gateway, people["alice"], "alice's secret plan")
    bobs = await _chat(scripted_gateway, people["bob"], "bob's chat")

    assert await _session_ids(scripted_gateway, people["alice"]) == [alices]
    assert await _session_ids(scripted_gateway, people["bob"]) == [bobs]
    assert set(await _session_ids(scripted_gateway, people["admin"])) == {alices, bobs}

    async with aiohttp.ClientSession() as client:
        async with client.ws_connect(_ws_url(scripted_gateway, people["bob"])) as ws:
            await ws.send_json({"type": "hello", "session_id": alices})
            refused = await ws.receive_json(timeout=FRAME_TIMEOUT_S)
            await ws.send_json({"type": "hello", "session_id": "s" + "0" * 24})
            unknown = await ws.receive_json(timeout=FRAME_TIMEOUT_S)
        async with client.ws_connect(_ws_url(scripted_gateway, people["admin"])) as ws:
            await ws.send_json({"type": "hello", "session_id": alices})
            joined = await ws.receive_json(timeout=FRAME_TIMEOUT_S)
            first_item = await ws.receive_json(timeout=FRAME_TIMEOUT_S)

    assert refused == {"type": "error", "code": "not_found", "message": f"no session {alices!r}"}
    assert unknown["code"] == "not_found" and set(unknown) == set(refused)
    assert joined["type"] == "session" and joined["session_id"] == alices
    assert first_item["kind"] == "user" and first_item["content"] == "alice's secret plan"


async def test_a_member_reads_and_cancels_only_their_own_runs_and_an_admin_all(
    scripted_gateway, people, answers
):
    alices = await _run(scripted_gateway, people["alice"])
    bobs = await _run(scripted_gateway, people["bob"])

    assert await _run_ids(scripted_gateway, people["alice"]) == [alices]
    assert await _run_ids(scripted_gateway, people["bob"]) == [bobs]
    assert set(await _run_ids(scripted_gateway, people["admin"])) == {alices, bobs}
    for method, path in [("GET", f"/v1/runs/{alices}"), ("POST", f"/v1/runs/{alices}/cancel")]:
        status, _, body = await _call(method, scripted_gateway, path, people["bob"])
        assert status == 404 and body["error"]["code"] == "not_found", (path, body)
        assert body["error"]["message"] == f"no run {alices!r}"
        status, _, body = await _call(method, scripted_gateway, path, people["admin"])
        assert status == 200, (path, body)
    status, _, body = await _call("GET", scripted_gateway, f"/v1/runs/{alices}", people["alice"])
    assert status == 200 and body["run"]["run_id"] == alices


async def test_a_token_s_user_owns_what_it_starts_apart_from_other_users(
    scripted_gateway, tenant, answers
):
    carol = hs256_token(tenant, sub="carol")
    dave = hs256_token(tenant, sub="dave")

    carols = await _run(scripted_gateway, carol)

    assert await _run_ids(scripted_gateway, carol) == [carols]
    assert await _run_ids(scripted_gateway, dave) == []
    # A key's user is not a token subject of the same name.
    assert await _run_ids(scripted_gateway, hs256_token(tenant, sub="api_key:x")) == []


async def test_sessions_and_runs_from_before_owners_are_seen_by_admins_only(
    scripted_gateway, scripted_bus, postgres, people, tenant, answers
):
    session_id = f"s{uuid.uuid4().hex[:24]}"
    conn = await asyncpg.connect(postgres.dsn)
    try:
        await conn.execute(
            "INSERT INTO gateway.sessions (session_id, tenant) VALUES ($1, $2)", session_id, tenant
        )
        await conn.execute(
            "INSERT INTO gateway.session_items (session_id, seq, kind, body) "
            "VALUES ($1, 1, 'user', $2::jsonb)",
            session_id,
            '{"type": "item", "seq": 1, "kind": "user", "content": "old"}',
        )
    finally:
        await conn.close()
    old_run = f"r{uuid.uuid4().hex[:12]}"
    await submit_run(scripted_bus, RunSubmit(run_id=old_run, tenant=tenant, agent="chatty"))
    await _until_listed(scripted_gateway, people["admin"], old_run)

    assert await _session_ids(scripted_gateway, people["admin"]) == [session_id]
    assert await _session_ids(scripted_gateway, people["alice"]) == []
    assert await _run_ids(scripted_gateway, people["alice"]) == []
    status, _, _ = await _call("GET", scripted_gateway, f"/v1/runs/{old_run}", people["alice"])
    assert status == 404


async def test_the_schema_change_applies_to_a_database_from_before_owners_again_and_again(
    postgres,
):
    database = f"gw_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(postgres.dsn)
    await admin.execute(f"CREATE DATABASE {database}")
    await admin.close()
    pool = await asyncpg.create_pool(postgres.dsn.rsplit("/", 1)[0] + f"/{database}")
    try:
        await pool.execute(SCHEMA_BEFORE_OWNERS)
        await pool.execute(
            "INSERT INTO gateway.api_keys (key_id, tenant, role, secret_hash) "
            "VALUES ('k1', 'acme', 'member', '\\x00')"
        )
        await pool.execute(
            "INSERT INTO gateway.sessions (session_id, tenant) VALUES ('s1', 'acme')"
        )
        schema = SCHEMA_SQL.read_text()

        await apply_schema(pool, schema)
        await apply_schema(pool, schema)

        assert await pool.fetchval("SELECT owner FROM gateway.sessions") is None
        checks = await pool.fetch(
            "SELECT conname FROM pg_constraint WHERE conrelid = 'gateway.api_keys'::regclass "
            "AND contype = 'c'"
        )
        assert [row["conname"] for row in checks] == ["api_keys_roles"]
        await pool.execute(
            "INSERT INTO gateway.api_keys (key_id, tenant, role, secret_hash) "
            "VALUES ('k2', 'acme', 'viewer', '\\x00'), ('k3', 'acme', 'ci', '\\x00')"
        )
        with pytest.raises(asyncpg.CheckViolationError):
            await pool.execute(
                "INSERT INTO gateway.api_keys (key_id, tenant, role, secret_hash) "
                "VALUES ('k4', 'acme', 'root', '\\x00')"
            )
        assert await pool.fetchval("SELECT count(*) FROM gateway.api_keys") == 3
    finally:
        await pool.close()


async def _chat(gateway, key: str, content: str) -> str:
    """A session with one message answered; its id."""
    async with (
        aiohttp.ClientSession() as client,
        client.ws_connect(_ws_url(gateway, key)) as ws,
    ):
        await ws.send_json({"type": "message", "content": content})
        session_id = None
        async with asyncio.timeout(FRAME_TIMEOUT_S):
            while True:
                frame = await ws.receive_json()
                session_id = session_id or frame.get("session_id")
                if frame["type"] == "item" and frame["kind"] == "assistant":
                    return session_id


async def _run(gateway, key: str) -> str:
    raw = await openai_client(gateway, key).chat.completions.with_raw_response.create(
        model="revo/chatty", messages=MESSAGES
    )
    return raw.headers["X-Revo-Run-Id"]


async def _until_listed(gateway, key: str, run_id: str) -> None:
    async with asyncio.timeout(FRAME_TIMEOUT_S):
        while True:  # the runner stores a run when it gets it
            if run_id in await _run_ids(gateway, key):
                return
            await asyncio.sleep(0.1)


async def _session_ids(gateway, key: str) -> list[str]:
    status, _, body = await _call("GET", gateway, "/v1/sessions", key)
    assert status == 200, body
    return [session["id"] for session in body["data"]]


async def _run_ids(gateway, key: str) -> list[str]:
    status, _, body = await _call("GET", gateway, "/v1/runs", key)
    assert status == 200, body
    return [run["run_id"] for run in body["runs"]]


async def _call(method: str, gateway, path: str, key: str):
    return await asyncio.to_thread(http, method, f"{base_url(gateway)}{path}", key)


def _ws_url(gateway, key: str) -> str:
    return base_url(gateway).replace("http://", "ws://") + f"/v1/ws?token={key}"
