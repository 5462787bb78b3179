"""`revo keys create|list|revoke`: a working key printed once, listed without its secret,
revoked; clear errors otherwise."""

from __future__ import annotations

import asyncio
import sys
import urllib.error
import urllib.request
import uuid

import pytest

from revo_core.testing.fixtures import nats_server_of

REVO = [sys.executable, "-m", "revo_cli.main"]


async def revo(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *REVO, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode or 0, out.decode(), err.decode()


def whoami(port: int, key: str) -> bytes:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/whoami")
    request.add_header("Authorization", f"Bearer {key}")
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read()


async def test_keys_create_prints_a_key_that_works(scripted_nats, scripted_gateway):
    code, out, err = await revo(
        "--nats-url", scripted_nats.url, "keys", "create", "--tenant", "globex", "--role", "admin"
    )

    assert code == 0, err
    key = out.strip()
    assert key.startswith("revo_") and "shown this once" in err
    answer = await asyncio.to_thread(whoami, scripted_gateway.http_port, key)
    assert b'"tenant": "globex"' in answer and b'"role": "admin"' in answer


async def test_keys_create_refuses_a_bad_tenant_and_a_missing_gateway(revo_tmp, bus_authority):
    # A NATS of its own: other tests start gateways on the shared ones.
    server = nats_server_of(revo_tmp / "nats-no-gateway", bus_authority)
    try:
        code, _, err = await revo("--nats-url", server.url, "keys", "create", "--tenant", "a b")
        assert code == 2 and "tenant" in err

        code, _, err = await revo("--nats-url", server.url, "keys", "create", "--tenant", "ok")
        assert code == 2 and "no chat-gateway answers" in err
    finally:
        server.stop()


async def test_keys_list_shows_a_key_without_its_secret_and_revoke_stops_it(
    scripted_nats, scripted_gateway
):
    nats = ("--nats-url", scripted_nats.url)
    tenant = f"t{uuid.uuid4().hex[:8]}"
    code, out, err = await revo(
        *nats, "keys", "create", "--tenant", tenant, "--role", "viewer", "--name", "dash",
        "--expires", "30d",
    )  # fmt: skip
    assert code == 0, err
    key = out.strip()
    key_id = key.split("_")[1]
    assert f"key {key_id} for tenant {tenant} (viewer, expires " in err

    code, listed, err = await revo(*nats, "keys", "list", "--tenant", tenant)
    assert code == 0, err
    header, row = listed.splitlines()
    assert header.split()[:3] == ["KEY", "ID", "TENANT"]
    assert row.split()[:4] == [key_id, tenant, "viewer", "dash"] and row.endswith("active")
    assert key.split("_", 2)[2] not in listed

    code, out, err = await revo(*nats, "keys", "revoke", key)  # the whole key names it too
    assert code == 0, err
    assert out.startswith(f"key {key_id} of tenant {tenant} revoked ")
    with pytest.raises(urllib.error.HTTPError) as refused:
        await asyncio.to_thread(whoami, scripted_gateway.http_port, key)
    assert refused.value.code == 401
    code, out, err = await revo(*nats, "keys", "list", "--tenant", tenant)
    assert (code, out, err.strip()) == (0, "", "no keys")
    code, out, _ = await revo(*nats, "keys", "list", "--tenant", tenant, "--all")
    assert key_id in out and "revoked" in out


async def test_keys_refuses_a_bad_duration_and_an_unknown_key(scripted_nats, scripted_gateway):
    nats = ("--nats-url", scripted_nats.url)
    code, _, err = await revo(*nats, "keys", "create", "--tenant", "ok", "--expires", "soon")
    assert code == 2 and "cannot read 'soon' as a duration" in err
    code, _, err = await revo(*nats, "keys", "create", "--tenant", "ok", "--expires", "30s")
    assert code == 2 and "duration" in err
    code, _, err = await revo(*nats, "keys", "revoke", "0123456789abcdef")
    assert code == 1 and "no API key '0123456789abcdef'" in err
    code, _, err = await revo(*nats, "keys", "revoke", "nope")
    assert code == 2 and "key_id" in err
