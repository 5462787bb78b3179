"""The bus fences identities (issue 14): the attacks found by probing the platform, each now
refused by nats-server with its permission error and logged by it, and what each identity
legitimately does still allowed (so a refusal here is the permissions, not a broken client).

The attacker is a plain NATS client (nats-py as anyone would use it), on a nats-server of its
own that trusts the session's authority, so its refusals never count against the services'
traffic, which the other tests check stays inside its lists.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest

from revo_contracts.bus_identities import ci_identity, inbox_prefix
from revo_core import nats_jwt
from revo_core.bus import Bus, identity_of
from revo_core.bus_authority import BusAuthority
from revo_core.embedded.nats_server import NatsServer
from revo_core.errors import BusUnauthorized

VIOLATION_WAIT_S = 3.0


class Client:
    """A raw NATS connection as one identity, keeping the errors the server sends it."""

    def __init__(self, nc: nats.NATS, errors: list[str], closed: asyncio.Event) -> None:
        self.nc = nc
        self.errors = errors
        self.closed = closed  # set when the server drops the connection

    async def refused(self, what: str, subject: str) -> bool:
        """Whether the server answered `what` ("publish" / "subscription") to `subject` with
        a permission violation."""
        expected = f'permissions violation for {what} to "{subject}"'.lower()
        end = time.monotonic() + VIOLATION_WAIT_S
        while time.monotonic() < end:
            if any(expected in error.lower() for error in self.errors):
                return True
            await asyncio.sleep(0.02)
        return False


@pytest.fixture(scope="module")
def guarded_nats(revo_tmp: Path, bus_authority: BusAuthority):
    server = NatsServer(revo_tmp / "nats-attacks", authority=bus_authority).start()
    yield server
    server.stop()


def creds_of(authority: BusAuthority, identity: str, base: Path) -> Path:
    """A fresh credential of `identity`, written where a client would keep it."""
    path = base / f"{identity}-{time.monotonic_ns()}.creds"
    path.write_text(authority.issue(identity))
    return path


async def connect(server: NatsServer, creds: Path) -> Client:
    errors: list[str] = []
    closed = asyncio.Event()

    async def on_error(exc: Exception) -> None:
        errors.append(str(exc))

    async def on_closed() -> None:
        closed.set()

    nc = await nats.connect(
        server.url,
        user_credentials=str(creds),
        inbox_prefix=inbox_prefix(identity_of(creds)),
        error_cb=on_error,
        closed_cb=on_closed,
        allow_reconnect=False,
    )
    return Client(nc, errors, closed)


@pytest.fixture
async def as_identity(guarded_nats, bus_authority, revo_tmp) -> AsyncIterator:
    clients: list[Client] = []

    async def make(identity: str) -> Client:
        client = await connect(guarded_nats, creds_of(bus_authority, identity, revo_tmp))
        clients.append(client)
        return client

    yield make
    for client in clients:
        if not client.nc.is_closed:
            await client.nc.close()


def logged(server: NatsServer, subject: str) -> bool:
    return any(
        "Violation" in line and f'"{subject}"' in line
        for line in server.log_file.read_text().splitlines()
    )


# The attacks of issue 14, from a CI publisher's credential (the least trusted identity) and
# from a service that has no business there (a compromised memory service).
PUBLISH_ATTACKS = [
    ("ci-alpha", "gateway.keys.create"),  # mint an admin API key for any tenant
    ("memory", "gateway.keys.create"),
    ("chat-gateway", "gateway.keys.create"),  # even the gateway cannot ask itself
    ("ci-alpha", "usage.alpha"),  # forge usage onto alpha's bill
    ("memory", "usage.alpha"),
    ("agent-runner", "usage.alpha"),
    ("ci-alpha", "runs.events.alpha.run-1"),  # forge a `finished` answer into alpha's chat
    ("memory", "runs.events.alpha.run-1"),
    ("inference", "runs.events.alpha.run-1"),
    ("ci-alpha", "runs.api.list"),  # list every tenant's runs
    ("memory", "runs.api.list"),
    ("ci-alpha", "ledger.report"),  # read any tenant's spend
    ("memory", "ledger.report"),
    ("ci-alpha", "runs.submit.beta"),  # run agents on another tenant's bill
    ("ci-alpha", "ci.events.beta.github"),  # a tenant's CI speaks only for that tenant
    ("ci-alpha", "memory.recall"),
]

SUBSCRIBE_ATTACKS = [
    ("ci-alpha", "runs.submit.>"),  # every tenant's prompts
    ("ci-alpha", "runs.events.>"),  # every tenant's answers
    ("ci-alpha", "runs.tokens.>"),
    ("memory", "runs.events.>"),
    ("inference", "runs.tokens.>"),
    ("memory", "_INBOX.chat-gateway.>"),  # another identity's replies
    ("ci-alpha", "_INBOX.>"),
    ("cost-ledger", "usage.>"),  # the ledger reads usage through its consumer, not core
]


@pytest.mark.parametrize(("identity", "subject"), PUBLISH_ATTACKS)
async def test_a_forged_publish_is_refused_by_nats_and_logged(
    as_identity, guarded_nats, identity, subject
):
    client = await as_identity(identity)
    await client.nc.publish(subject, b'{"tenant":"beta","role":"admin"}')
    await client.nc.flush()
    assert await client.refused("publish", subject), client.errors
    assert logged(guarded_nats, subject)


@pytest.mark.parametrize(("identity", "subject"), SUBSCRIBE_ATTACKS)
async def test_reading_another_identitys_subjects_is_refused_by_nats_and_logged(
    as_identity, guarded_nats, identity, subject
):
    client = await as_identity(identity)
    await client.nc.subscribe(subject)
    await client.nc.flush()
    assert await client.refused("subscription", subject), client.errors
    assert logged(guarded_nats, subject)


# What each identity is there to do goes through (the same client code as the attacks).
ALLOWED_PUBLISHES = [
    ("operator", "gateway.keys.create"),
    ("inference", "usage.alpha"),
    ("agent-runner", "runs.events.alpha.run-1"),
    ("chat-gateway", "runs.submit.alpha"),
    ("ci-alpha", "ci.events.alpha.github"),
    ("memory", "inference.embed"),
]


@pytest.mark.parametrize(("identity", "subject"), ALLOWED_PUBLISHES)
async def test_what_an_identity_is_for_reaches_its_subscribers(as_identity, identity, subject):
    listener = await as_identity("operator")
    received = asyncio.get_running_loop().create_future()

    async def on_message(msg) -> None:
        received.set_result(msg.data)

    await listener.nc.subscribe(subject, cb=on_message)
    await listener.nc.flush()
    client = await as_identity(identity)
    await client.nc.publish(subject, b"{}")
    await client.nc.flush()
    assert await asyncio.wait_for(received, 3) == b"{}"
    assert client.errors == []


async def test_a_connection_without_credentials_is_refused(guarded_nats):
    with pytest.raises(BusUnauthorized, match="needs credentials"):
        await Bus.connect(guarded_nats.url, name="anonymous", connect_attempts=1)


async def test_credentials_of_another_authority_are_refused(guarded_nats, revo_tmp):
    stranger = BusAuthority.load_or_create(revo_tmp / "stranger-authority")
    with pytest.raises(BusUnauthorized, match="credentials were refused"):
        await Bus.connect(
            guarded_nats.url,
            name="stranger",
            connect_attempts=1,
            credentials=stranger.creds_file("operator"),
        )


async def test_an_expired_ci_credential_is_refused(guarded_nats, bus_authority, revo_tmp):
    creds = revo_tmp / "expired.creds"
    creds.write_text(bus_authority.issue(ci_identity("alpha"), expires_at=time.time() - 60))
    with pytest.raises(BusUnauthorized):
        await Bus.connect(guarded_nats.url, name="late", connect_attempts=1, credentials=creds)


async def test_a_revoked_ci_credential_is_cut_off_and_cannot_come_back(revo_tmp, bus_authority):
    # A server of its own: revoking rewrites and reloads the server's config.
    server = NatsServer(revo_tmp / "nats-revocation", authority=bus_authority).start()
    try:
        creds = creds_of(bus_authority, ci_identity("alpha"), revo_tmp)
        client = await connect(server, creds)
        await client.nc.publish("ci.events.alpha.github", b"{}")
        await client.nc.flush()
        public_key = nats_jwt.creds_claims(creds.read_text())["sub"]
        bus_authority.revoke(public_key)
        server.reload()
        await asyncio.wait_for(client.closed.wait(), 5)
        with pytest.raises(BusUnauthorized):
            await Bus.connect(server.url, name="again", connect_attempts=1, credentials=creds)
        # Other credentials are untouched.
        other = await connect(server, creds_of(bus_authority, ci_identity("alpha"), revo_tmp))
        assert other.nc.is_connected
        await other.nc.close()
    finally:
        server.stop()


def test_credentials_and_the_authority_are_readable_by_their_owner_only(bus_authority):
    directory = bus_authority.directory
    assert directory.stat().st_mode & 0o077 == 0
    for path in [directory / "authority.json", bus_authority.creds_file("inference")]:
        assert path.stat().st_mode & 0o777 == 0o600, path
