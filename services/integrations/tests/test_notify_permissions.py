"""Who may speak on the notification subjects: a forged notification, a forged dead letter,
or a redrive / test request from an identity other than the operator is refused by
nats-server; the integrations service itself may put a redriven notification back.

On a nats-server of its own (not checked for violations: the refusals are the point)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest

from revo_contracts import subjects
from revo_contracts.bus_identities import ci_identity, inbox_prefix
from revo_core.bus_authority import BusAuthority
from revo_core.embedded.nats_server import NatsServer

REFUSAL_WAIT_S = 3.0


@pytest.fixture(scope="module")
def notify_guarded_nats(revo_tmp: Path, bus_authority: BusAuthority):
    server = NatsServer(revo_tmp / "nats-notify-attacks", authority=bus_authority).start()
    yield server
    server.stop()


@pytest.fixture
async def connect_as(notify_guarded_nats, bus_authority, revo_tmp) -> AsyncIterator:
    connections: list[nats.NATS] = []

    async def connect(identity: str) -> tuple[nats.NATS, list[str]]:
        creds = revo_tmp / f"notify-{identity}-{time.monotonic_ns()}.creds"
        creds.write_text(bus_authority.issue(identity))
        errors: list[str] = []

        async def on_error(exc: Exception) -> None:
            errors.append(str(exc).lower())

        nc = await nats.connect(
            notify_guarded_nats.url,
            user_credentials=str(creds),
            inbox_prefix=inbox_prefix(identity),
            error_cb=on_error,
            allow_reconnect=False,
        )
        connections.append(nc)
        return nc, errors

    yield connect
    for nc in connections:
        await nc.close()


async def refused(errors: list[str], subject: str) -> bool:
    expected = f'permissions violation for publish to "{subject}"'.lower()
    end = time.monotonic() + REFUSAL_WAIT_S
    while time.monotonic() < end:
        if any(expected in error for error in errors):
            return True
        await asyncio.sleep(0.02)
    return False


@pytest.mark.parametrize(
    ("identity", "subject"),
    [
        (ci_identity("alpha"), subjects.notify("slack", "alpha")),  # a CI posts to Slack
        ("memory", subjects.notify("github", "alpha")),
        ("chat-gateway", subjects.notify_dead("jira", "alpha")),  # a forged dead letter
        ("chat-gateway", subjects.INTEGRATIONS_NOTIFY_REDRIVE),
        ("agent-runner", subjects.INTEGRATIONS_NOTIFY_DEAD_LIST),
        (ci_identity("alpha"), subjects.INTEGRATIONS_CONFIG_TEST),
    ],
)
async def test_notification_subjects_refuse_identities_that_have_no_business_there(
    connect_as, identity, subject
):
    nc, errors = await connect_as(identity)
    await nc.publish(subject, b"{}")
    await nc.flush()
    assert await refused(errors, subject), errors


@pytest.mark.parametrize(
    ("identity", "subject"),
    [
        ("integrations", subjects.notify("slack", "alpha")),  # a redriven notification
        ("integrations", subjects.notify_dead("slack", "alpha")),
        ("operator", subjects.INTEGRATIONS_NOTIFY_REDRIVE),
    ],
)
async def test_the_identities_that_use_them_get_through(connect_as, identity, subject):
    listener, _ = await connect_as("operator")
    received = asyncio.get_running_loop().create_future()

    async def on_message(msg) -> None:
        received.set_result(msg.data)

    await listener.subscribe(subject, cb=on_message)
    await listener.flush()
    nc, errors = await connect_as(identity)
    await nc.publish(subject, b"{}")
    await nc.flush()
    assert await asyncio.wait_for(received, 3) == b"{}"
    assert errors == []
