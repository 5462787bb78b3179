"""`revo creds`: a tenant's CI credential, issued, listed, used and revoked, as an operator
would do it, against a real nats-server trusting the authority the CLI keeps."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import nats
import pytest
import yaml

from revo_contracts.bus_identities import SERVICES, inbox_prefix
from revo_core import nats_jwt
from revo_core.bus import Bus
from revo_core.bus_authority import BusAuthority
from revo_core.embedded.nats_server import NatsServer
from revo_core.errors import BusUnauthorized

REVO = [sys.executable, "-m", "revo_cli.main"]


async def revo(authority_dir: Path, *args: str) -> tuple[int, str, str]:
    env = {**os.environ, "REVO_NATS_AUTHORITY": str(authority_dir)}
    process = await asyncio.create_subprocess_exec(
        *REVO, *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode or 0, out.decode(), err.decode()


@pytest.fixture
def operator_site(tmp_path: Path):
    """An operator's authority directory and a nats-server that trusts it."""
    directory = tmp_path / "authority"
    server = NatsServer(tmp_path / "nats", authority=BusAuthority.load_or_create(directory))
    server.start()
    yield directory, server
    server.stop()


async def test_a_ci_credential_publishes_for_its_tenant_until_it_is_revoked(operator_site):
    directory, server = operator_site
    code, out, err = await revo(directory, "creds", "create", "--role", "ci", "--tenant", "acme")
    assert code == 0, err
    creds = directory.parent / "acme-ci.creds"
    creds.write_text(out)
    public_key = nats_jwt.creds_claims(out)["sub"]
    assert f"credential {public_key} for ci-acme" in err

    listener = await Bus.connect(server.url, "operator", credentials=server.creds())
    received = asyncio.get_running_loop().create_future()

    async def on_event(msg) -> None:
        received.set_result(msg.subject)

    await listener.nc.subscribe("ci.events.>", cb=on_event)
    await listener.nc.flush()
    ci = await nats.connect(
        server.url, user_credentials=str(creds), inbox_prefix=inbox_prefix("ci-acme")
    )
    await ci.publish("ci.events.acme.jenkins", b"{}")
    assert await asyncio.wait_for(received, 3) == "ci.events.acme.jenkins"

    code, out, _ = await revo(directory, "creds", "list")
    assert code == 0
    assert any(
        public_key in line and "ci-acme" in line and "valid" in line for line in out.splitlines()
    )

    code, out, _ = await revo(directory, "creds", "revoke", public_key)
    assert code == 0
    assert f"revoked {public_key} (ci-acme)" in out
    server.reload()  # what the command tells an operator whose server `revo up` did not start
    with pytest.raises(BusUnauthorized):
        await Bus.connect(server.url, "again", connect_attempts=1, credentials=creds)
    code, out, _ = await revo(directory, "creds", "list")
    assert any(public_key in line and "revoked" in line for line in out.splitlines())
    await ci.close()
    await listener.close()


async def test_creds_create_refuses_a_ci_credential_without_a_tenant_or_with_a_bad_one(
    operator_site,
):
    directory, _ = operator_site
    code, _, err = await revo(directory, "creds", "create", "--role", "ci")
    assert code == 2
    assert "needs --tenant" in err
    code, _, err = await revo(directory, "creds", "create", "--role", "ci", "--tenant", "a.b")
    assert code == 2
    assert "tenant 'a.b'" in err
    code, _, err = await revo(
        directory, "creds", "create", "--role", "ci", "--tenant", "ok", "--expires", "soon"
    )
    assert code == 2
    assert "--expires" in err


async def test_revoking_an_unknown_key_is_a_usage_error(operator_site):
    directory, _ = operator_site
    code, _, err = await revo(directory, "creds", "revoke", "UNOTAKEYOFOURS")
    assert code == 2
    assert "no credential" in err


async def test_the_k8s_secret_holds_the_servers_trust_and_each_services_credentials(
    operator_site,
):
    directory, server = operator_site
    code, out, err = await revo(directory, "creds", "k8s-secret", "--namespace", "revo")
    assert code == 0, err
    secret = yaml.safe_load(out)
    assert secret["kind"] == "Secret"
    assert secret["metadata"] == {"name": "revo-nats-auth", "namespace": "revo"}
    data = secret["stringData"]
    assert set(data) == {"auth.conf", *(f"{service}.creds" for service in SERVICES)}
    assert "operator.creds" not in data  # the operator's stay on the operator's machine
    for service in SERVICES:
        path = directory.parent / f"{service}.creds"
        path.write_text(data[f"{service}.creds"])
        bus = await Bus.connect(server.url, service, credentials=path)
        assert bus.nc.is_connected
        await bus.close()
