"""A CI publisher's own NATS credential (`revo creds create --role ci --tenant T`), used as
README's `nats pub` snippet uses it: a CiEvent it publishes to `ci.events.T.<provider>` is
stored on CI_EVENTS (acknowledged, deduplicated by its Nats-Msg-Id); one for another tenant
is refused by nats-server and stored nowhere. (test_bus_security.py checks the refusal of
the bare subject; this checks what reaches the stream.)"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import msgspec
import nats
import pytest
from nats.js.errors import NoStreamResponseError

from revo_contracts import subjects
from revo_contracts.bus_identities import ci_identity, inbox_prefix
from revo_contracts.ci import CiEvent, CiLog, CiRepository
from revo_contracts.streams import CI_EVENTS
from revo_core.bus import Bus
from revo_core.bus_authority import BusAuthority
from revo_core.embedded.nats_server import NatsServer
from revo_core.jetstream import ensure_streams


@pytest.fixture
def ci_site(tmp_path: Path):
    """An operator's authority and a nats-server of its own (refusals are expected here,
    so not one of the session's checked servers)."""
    directory = tmp_path / "authority"
    server = NatsServer(tmp_path / "nats", authority=BusAuthority.load_or_create(directory))
    server.start()
    yield directory, server
    server.stop()


async def issue_ci_creds(directory: Path, tenant: str, out: Path) -> None:
    env = {**os.environ, "REVO_NATS_AUTHORITY": str(directory)}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "revo_cli.main", "creds", "create", "--role", "ci",
        "--tenant", tenant, "--out", str(out),
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()


async def stored(bus: Bus, tenant: str) -> int:
    info = await bus.js.stream_info(CI_EVENTS.name, subjects_filter=f"ci.events.{tenant}.>")
    return sum((info.state.subjects or {}).values())


async def test_a_ci_credential_stores_its_tenant_s_events_and_no_one_else_s(ci_site):
    directory, server = ci_site
    creds = directory.parent / "acme-ci.creds"
    await issue_ci_creds(directory, "acme", creds)
    operator = await Bus.connect(server.url, "operator", credentials=server.creds())
    await ensure_streams(operator.js, (CI_EVENTS,))
    errors: list[str] = []

    async def on_error(exc: Exception) -> None:
        errors.append(str(exc))

    ci = await nats.connect(
        server.url,
        user_credentials=str(creds),
        inbox_prefix=inbox_prefix(ci_identity("acme")),
        error_cb=on_error,
    )
    event = CiEvent(
        event_id="jenkins-build-311",
        tenant="acme",
        provider="jenkins",
        status="failure",
        repository=CiRepository(full_name="acme/shop", url="https://git.example/acme/shop"),
        commit_sha="d" * 40,
        job="integration",
        job_id="integration#311",
        log=CiLog(text="FAILED: 2 tests\n"),
        received_at=time.time(),
    )
    raw = msgspec.json.encode(event)
    headers = {"Nats-Msg-Id": f"ci:acme:{event.event_id}"}
    try:
        ack = await ci.jetstream().publish(
            subjects.ci_events("acme", "jenkins"), raw, headers=headers
        )
        again = await ci.jetstream().publish(
            subjects.ci_events("acme", "jenkins"), raw, headers=headers
        )
        assert ack.stream == CI_EVENTS.name and not ack.duplicate
        assert again.duplicate and again.seq == ack.seq
        kept = await operator.js.get_last_msg(CI_EVENTS.name, subjects.ci_events("acme", "jenkins"))
        assert msgspec.json.decode(kept.data, type=CiEvent) == event

        forged = msgspec.json.encode(msgspec.structs.replace(event, tenant="other"))
        with pytest.raises((NoStreamResponseError, nats.errors.TimeoutError)):
            await ci.jetstream().publish(
                subjects.ci_events("other", "jenkins"), forged, timeout=1.0
            )
        await ci.flush()
        assert any(
            'permissions violation for publish to "ci.events.other.jenkins"' in e.lower()
            for e in errors
        ), errors
        assert await stored(operator, "other") == 0
        assert await stored(operator, "acme") == 1
    finally:
        await ci.close()
        await operator.close()
