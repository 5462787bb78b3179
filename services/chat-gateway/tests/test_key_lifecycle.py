"""API keys over their life: listed without secrets, last use kept (written at most once a
minute), expiry, and revocation that every replica honours within a second."""

from __future__ import annotations

import asyncio
import time
import uuid

import aiohttp
import asyncpg
import pytest
from gateway_testkit import base_url, hs256_token, http

from revo_contracts import subjects
from revo_contracts.audit import AuditEvent, AuditListRequest, AuditListResponse
from revo_contracts.gateway import (
    KeyCreateRequest,
    KeyCreateResponse,
    KeyListRequest,
    KeyListResponse,
    KeyRevokeRequest,
    KeyRevokeResponse,
)
from revo_core.errors import InvalidRequest, NotFound

REVOKED_WITHIN_S = 1.0


@pytest.fixture
def tenant() -> str:
    return f"t{uuid.uuid4().hex[:8]}"


async def _create(bus, tenant: str, **fields) -> KeyCreateResponse:
    request = KeyCreateRequest(tenant=tenant, **fields)
    return await bus.request(subjects.GATEWAY_KEYS_CREATE, request, KeyCreateResponse)


async def _list(bus, tenant: str, include_revoked: bool = False) -> KeyListResponse:
    request = KeyListRequest(tenant=tenant, include_revoked=include_revoked)
    return await bus.request(subjects.GATEWAY_KEYS_LIST, request, KeyListResponse)


async def _revoke(bus, key_id: str) -> KeyRevokeResponse:
    request = KeyRevokeRequest(key_id=key_id)
    return await bus.request(subjects.GATEWAY_KEYS_REVOKE, request, KeyRevokeResponse)


async def _whoami(gateway, key: str):
    return await asyncio.to_thread(http, "GET", f"{base_url(gateway)}/v1/whoami", key)


async def _last_used(postgres, key_id: str):
    conn = await asyncpg.connect(postgres.dsn)
    try:
        return await conn.fetchval(
            "SELECT last_used_at FROM gateway.api_keys WHERE key_id = $1", key_id
        )
    finally:
        await conn.close()


async def test_keys_are_listed_with_their_last_use_and_never_their_secret(
    scripted_gateway, scripted_bus, postgres, tenant
):
    used = await _create(scripted_bus, tenant, role="viewer", name="dashboards")
    unused = await _create(scripted_bus, tenant, role="ci")
    before = time.time()

    assert (await _whoami(scripted_gateway, used.key))[0] == 200
    first_use = await _last_used(postgres, used.key_id)
    assert (await _whoami(scripted_gateway, used.key))[0] == 200
    listed = await _list(scripted_bus, tenant)

    assert await _last_used(postgres, used.key_id) == first_use  # no write a request
    assert [(k.key_id, k.role, k.name) for k in listed.keys] == [
        (used.key_id, "viewer", "dashboards"),
        (unused.key_id, "ci", None),
    ]
    assert before - 5 <= listed.keys[0].last_used_at <= time.time() + 5
    assert listed.keys[1].last_used_at is None
    assert all(k.expires_at is None and k.revoked_at is None for k in listed.keys)
    secret = used.key.split("_", 2)[2]
    assert secret not in repr(listed)


async def test_a_key_with_an_expiry_works_until_then_and_is_refused_after(
    scripted_gateway, scripted_bus, postgres, tenant
):
    created = await _create(scripted_bus, tenant, expires_in_s=30 * 86_400)
    assert abs(created.expires_at - (time.time() + 30 * 86_400)) < 60
    assert (await _whoami(scripted_gateway, created.key))[0] == 200

    conn = await asyncpg.connect(postgres.dsn)
    try:  # a month later
        await conn.execute(
            "UPDATE gateway.api_keys SET expires_at = now() - interval '1 second' "
            "WHERE key_id = $1",
            created.key_id,
        )
    finally:
        await conn.close()
    status, _, body = await _whoami(scripted_gateway, created.key)

    assert status == 401 and body["error"] == {
        "message": "API key expired",
        "type": "unauthorized",
        "code": "unauthorized",
    }


async def test_a_lifetime_out_of_range_is_refused(scripted_gateway, scripted_bus, tenant):
    for seconds in (0, 59, 11 * 365 * 86_400):
        with pytest.raises(InvalidRequest, match="expires_in_s"):
            await scripted_bus.request(
                subjects.GATEWAY_KEYS_CREATE,
                {"tenant": tenant, "expires_in_s": seconds},
                KeyCreateResponse,
            )


async def test_a_revoked_key_is_refused_by_every_replica_within_a_second(
    scripted_nats, scripted_runner, scripted_gateway, gateway_factory, scripted_bus, tenant
):
    other = await asyncio.to_thread(gateway_factory.start, scripted_nats.url, "gateway-replica")
    created = await _create(scripted_bus, tenant)
    kept = await _create(scripted_bus, tenant)
    for gateway in (scripted_gateway, other):
        assert (await _whoami(gateway, created.key))[0] == 200
    ws_url = base_url(other).replace("http://", "ws://") + f"/v1/ws?token={created.key}"
    async with aiohttp.ClientSession() as client, client.ws_connect(ws_url) as ws:
        await ws.send_json({"type": "ping"})
        assert await ws.receive_json(timeout=5) == {"type": "pong"}

        revoked = await _revoke(scripted_bus, created.key_id)
        started = time.monotonic()
        refused_by = {}
        while len(refused_by) < 2 and time.monotonic() - started < REVOKED_WITHIN_S:
            for name, gateway in (("a", scripted_gateway), ("b", other)):
                status, _, body = await _whoami(gateway, created.key)
                if status == 401 and name not in refused_by:
                    refused_by[name] = (time.monotonic() - started, body["error"]["message"])
        frame = await ws.receive_json(timeout=REVOKED_WITHIN_S)
        closed = await ws.receive(timeout=REVOKED_WITHIN_S)

    assert set(refused_by) == {"a", "b"}, refused_by
    assert all(message == "API key revoked" for _, message in refused_by.values())
    assert frame == {"type": "error", "code": "unauthorized", "message": "API key revoked"}
    assert closed.type is aiohttp.WSMsgType.CLOSE and closed.data == 1008
    assert (await _whoami(other, kept.key))[0] == 200  # only that key
    assert revoked.tenant == tenant and abs(revoked.revoked_at - time.time()) < 60
    again = await _revoke(scripted_bus, created.key_id)
    assert again.revoked_at == revoked.revoked_at  # idempotent: the first time stays
    assert [k.key_id for k in (await _list(scripted_bus, tenant)).keys] == [kept.key_id]
    listed = await _list(scripted_bus, tenant, include_revoked=True)
    assert {k.key_id: k.revoked_at for k in listed.keys} == {
        created.key_id: revoked.revoked_at,
        kept.key_id: None,
    }


async def test_a_chat_socket_ends_when_its_key_or_token_expires(
    scripted_gateway, scripted_bus, postgres, tenant
):
    created = await _create(scripted_bus, tenant, expires_in_s=3600)
    conn = await asyncpg.connect(postgres.dsn)
    try:  # an hour later, but for two seconds
        await conn.execute(
            "UPDATE gateway.api_keys SET expires_at = now() + interval '2 seconds' "
            "WHERE key_id = $1",
            created.key_id,
        )
    finally:
        await conn.close()
    token = hs256_token(tenant, exp=int(time.time()) + 3)
    ws_base = base_url(scripted_gateway).replace("http://", "ws://") + "/v1/ws?token="

    async with aiohttp.ClientSession() as client:
        for credential in (created.key, token):
            async with client.ws_connect(ws_base + credential) as ws:
                await ws.send_json({"type": "ping"})
                assert await ws.receive_json(timeout=5) == {"type": "pong"}
                frame = await ws.receive_json(timeout=10)
                closed = await ws.receive(timeout=5)

            assert frame == {
                "type": "error",
                "code": "unauthorized",
                "message": "credentials expired",
            }
            assert closed.type is aiohttp.WSMsgType.CLOSE and closed.data == 1008


async def test_a_revocation_is_audited_once(scripted_gateway, scripted_bus, tenant):
    created = await _create(scripted_bus, tenant)

    await _revoke(scripted_bus, created.key_id)
    await _revoke(scripted_bus, created.key_id)  # changes nothing: not recorded again
    await _create(scripted_bus, tenant)  # the last event: the log is complete up to it
    events = await _audit_until(scripted_bus, tenant, 3)

    assert [(e.action, e.target, e.actor) for e in reversed(events)][:2] == [
        ("key.created", created.key_id, "operator"),
        ("key.revoked", created.key_id, "operator"),
    ]
    assert [e.action for e in events].count("key.revoked") == 1


async def test_a_tenant_admin_lists_and_revokes_its_tenant_s_keys_and_no_others(
    scripted_gateway, scripted_bus, tenant
):
    admin = await _create(scripted_bus, tenant, role="admin")
    member = await _create(scripted_bus, tenant, role="member")
    stranger = await _create(scripted_bus, f"t{uuid.uuid4().hex[:8]}", role="member")
    url = base_url(scripted_gateway)

    def call(method: str, path: str):
        return asyncio.to_thread(http, method, url + path, admin.key)

    listed = await call("GET", "/v1/keys")
    other_tenant = await call("POST", f"/v1/keys/{stranger.key_id}/revoke")
    revoked = await call("POST", f"/v1/keys/{member.key_id}/revoke")
    after = await call("GET", "/v1/keys")
    with_revoked = await call("GET", "/v1/keys?all=true")
    bad = await call("GET", "/v1/keys?all=maybe")

    assert listed[0] == 200
    assert [k["key_id"] for k in listed[2]["keys"]] == [admin.key_id, member.key_id]
    assert member.key.split("_", 2)[2] not in repr(listed)
    assert other_tenant[0] == 404 and other_tenant[2]["error"]["code"] == "not_found"
    assert (await _whoami(scripted_gateway, stranger.key))[0] == 200
    assert revoked[0] == 200 and revoked[2]["key_id"] == member.key_id
    assert revoked[2]["tenant"] == tenant
    status, _, body = await _whoami(scripted_gateway, member.key)
    assert status == 401 and body["error"]["message"] == "API key revoked"
    assert [k["key_id"] for k in after[2]["keys"]] == [admin.key_id]
    assert [k["key_id"] for k in with_revoked[2]["keys"]] == [admin.key_id, member.key_id]
    assert bad[0] == 400 and bad[2]["error"]["code"] == "invalid_request"
    events = await _audit_until(scripted_bus, tenant, 3)
    assert ("key.revoked", member.key_id, f"key:{admin.key_id}") in [
        (e.action, e.target, e.actor) for e in events
    ]


async def _audit_until(bus, tenant: str, count: int) -> list[AuditEvent]:
    """The tenant's audit events, newest first, once `count` are kept (or 10 s passed)."""
    async with asyncio.timeout(10):
        while True:
            listed = await bus.request(
                subjects.GATEWAY_AUDIT_LIST, AuditListRequest(tenant=tenant), AuditListResponse
            )
            if len(listed.events) >= count:
                return listed.events
            await asyncio.sleep(0.1)


async def test_revoking_an_unknown_or_malformed_key_id_is_a_clear_error(
    scripted_gateway, scripted_bus
):
    with pytest.raises(NotFound, match="no API key '0123456789abcdef'"):
        await _revoke(scripted_bus, "0123456789abcdef")
    with pytest.raises(InvalidRequest, match="key_id"):
        await scripted_bus.request(
            subjects.GATEWAY_KEYS_REVOKE, {"key_id": "../x"}, KeyRevokeResponse
        )
