"""`revo keys create`: prints a working key once; clear errors otherwise."""

from __future__ import annotations

import asyncio
import sys
import urllib.request

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
