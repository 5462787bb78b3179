"""integrations.config.put|list|remove and integrations.policy.put|get over NATS: stored,
listed masked, removed, audited without a secret, bad input refused with its field; and no
identity but the operator's can reach them."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import nats
import pytest
from standardwebhooks.webhooks import Webhook

from revo_contracts import subjects
from revo_contracts.audit import AuditEvent
from revo_contracts.bus_identities import ci_identity, inbox_prefix
from revo_contracts.integrations import (
    MASK,
    CiPolicy,
    Done,
    GithubIntegration,
    IntegrationListRequest,
    IntegrationListResponse,
    IntegrationPut,
    IntegrationRef,
    PolicyGet,
    PolicyPut,
    WebhookIntegration,
)
from revo_contracts.streams import AUDIT
from revo_core.bus import identity_of, raise_if_error
from revo_core.embedded.nats_server import NatsServer
from revo_core.errors import InvalidRequest, NotFound
from revo_core.testing.fixtures import INTEGRATIONS_SECRET_KEY, operator_bus
from revo_integrations.config_store import ConfigStore
from revo_integrations.secret_box import SecretBox

TOKEN = "ghp_thistokenmustneverbeseenagain"
HOOK_SECRET = "github-hook-secret-never-shown"


def new_tenant() -> str:
    return f"cfg-{uuid.uuid4().hex[:10]}"


async def put(bus, tenant: str, integration) -> Done:
    request = IntegrationPut(tenant=tenant, integration=integration)
    return await bus.request(subjects.INTEGRATIONS_CONFIG_PUT, request, Done)


async def listed(bus, tenant: str | None):
    request = IntegrationListRequest(tenant=tenant)
    return (
        await bus.request(subjects.INTEGRATIONS_CONFIG_LIST, request, IntegrationListResponse)
    ).integrations


async def audit_events(bus, tenant: str, count: int, timeout: float = 10.0) -> list[AuditEvent]:
    end = time.monotonic() + timeout
    while True:
        info = await bus.js.stream_info(AUDIT.name, subjects_filter=subjects.audit(tenant))
        found = (info.state.subjects or {}).get(subjects.audit(tenant), 0)
        if found >= count or time.monotonic() > end:
            break
        await asyncio.sleep(0.05)
    events, seq = [], 1
    for _ in range(found):
        msg = await bus.js.get_msg(AUDIT.name, seq=seq, subject=subjects.audit(tenant), next=True)
        events.append(msgspec.json.decode(msg.data, type=AuditEvent))
        seq = msg.seq + 1
    return events


async def test_an_integration_is_stored_listed_masked_removed_and_audited(
    integrations, integrations_bus, pg
):
    tenant = new_tenant()
    github = GithubIntegration(
        webhook_secret=HOOK_SECRET, token=TOKEN, api_url="http://127.0.0.1:9/api", comments=False
    )
    assert (await put(integrations_bus, tenant, github)).secret == ""

    [info] = await listed(integrations_bus, tenant)
    assert (info.tenant, info.kind) == (tenant, "github")
    assert info.integration == GithubIntegration(
        webhook_secret=MASK, token=MASK, api_url="http://127.0.0.1:9/api", comments=False
    )
    assert any(i.tenant == tenant for i in await listed(integrations_bus, None))
    # What the service keeps is what was put, secrets and all.
    store = ConfigStore(pg, SecretBox(INTEGRATIONS_SECRET_KEY))
    assert await store.get(tenant, "github") == github

    removed = await integrations_bus.request(
        subjects.INTEGRATIONS_CONFIG_REMOVE, IntegrationRef(tenant=tenant, kind="github"), Done
    )
    assert removed.done and await listed(integrations_bus, tenant) == []
    with pytest.raises(NotFound, match="has no github integration"):
        await integrations_bus.request(
            subjects.INTEGRATIONS_CONFIG_REMOVE, IntegrationRef(tenant=tenant, kind="github"), Done
        )

    added, gone = await audit_events(integrations_bus, tenant, 2)
    assert (added.action, gone.action) == ("integration.added", "integration.removed")
    assert added.actor == "operator" and added.target == "integration:github"
    assert added.service == "integrations" and added.details == {"kind": "github"}
    for event in (added, gone):
        raw = msgspec.json.encode(event).decode()
        assert TOKEN not in raw and HOOK_SECRET not in raw


async def test_a_webhook_without_a_secret_gets_a_standard_webhooks_one_answered_once(
    integrations, integrations_bus, pg
):
    tenant = new_tenant()
    done = await put(integrations_bus, tenant, WebhookIntegration(url="https://hooks.example/x"))
    assert done.secret.startswith("whsec_")
    # A receiver's Standard Webhooks verifier takes it, and the service signs with it.
    signer = Webhook(done.secret)
    stored = await ConfigStore(pg, SecretBox(INTEGRATIONS_SECRET_KEY)).get(tenant, "webhook")
    assert stored.secret == done.secret
    assert Webhook(stored.secret).sign("msg_1", _now(), "{}") == signer.sign("msg_1", _now(), "{}")
    [info] = await listed(integrations_bus, tenant)
    assert info.integration == WebhookIntegration(url="https://hooks.example/x", secret=MASK)
    # One put with its own secret keeps it, and answers none.
    own = "whsec_" + "QUJD" * 8
    again = await put(
        integrations_bus, tenant, WebhookIntegration(url="https://h.example", secret=own)
    )
    assert again.secret == ""


def _now() -> datetime:
    return datetime.fromtimestamp(1_700_000_000, UTC)


@pytest.mark.parametrize(
    ("tenant", "integration", "field"),
    [
        ("a b", {"type": "slack", "channel": "#c"}, "tenant"),
        ("t", {"type": "carrier-pigeon"}, "integration"),
        ("t", {"type": "jira", "site": "https://x"}, "integration"),  # no project
        ("t", {"type": "slack", "channel": "#c"}, "integration.webhook_url"),
        ("t", {"type": "github", "api_url": "file:///etc"}, "integration.api_url"),
        ("t", {"type": "webhook", "url": "https://x", "secret": "whsec_"}, "integration.secret"),
        ("t", {"type": "webhook", "url": "gopher://x"}, "integration.url"),
    ],
)
async def test_bad_integrations_are_refused_naming_the_field(
    integrations, integrations_bus, tenant, integration, field
):
    payload = {"tenant": tenant, "integration": integration}
    with pytest.raises(InvalidRequest) as refused:
        await _request(integrations_bus, subjects.INTEGRATIONS_CONFIG_PUT, payload)
    assert refused.value.details["field"].startswith(field), refused.value
    assert await listed(integrations_bus, "t") == []


async def test_a_ci_policy_is_stored_and_answered_and_a_bad_one_refused(
    integrations, integrations_bus
):
    tenant = new_tenant()
    get = PolicyGet(tenant=tenant)
    assert (
        await integrations_bus.request(subjects.INTEGRATIONS_POLICY_GET, get, CiPolicy)
        == CiPolicy()
    )
    policy = CiPolicy(
        agent="triage", repositories=["acme/*"], branches=["main"], window_s=600, notify=["slack"]
    )
    put_policy = PolicyPut(tenant=tenant, policy=policy)
    assert (await integrations_bus.request(subjects.INTEGRATIONS_POLICY_PUT, put_policy, Done)).done
    assert await integrations_bus.request(subjects.INTEGRATIONS_POLICY_GET, get, CiPolicy) == policy

    bad = {"tenant": tenant, "policy": {"agent": "Not An Agent"}}
    with pytest.raises(InvalidRequest, match=r"policy\.agent"):
        await _request(integrations_bus, subjects.INTEGRATIONS_POLICY_PUT, bad)
    bad = {"tenant": tenant, "policy": {"window_s": -1}}
    with pytest.raises(InvalidRequest, match=r"policy\.window_s"):
        await _request(integrations_bus, subjects.INTEGRATIONS_POLICY_PUT, bad)
    assert await integrations_bus.request(subjects.INTEGRATIONS_POLICY_GET, get, CiPolicy) == policy


async def _request(bus, subject: str, payload: dict) -> None:
    raise_if_error(await bus.nc.request(subject, msgspec.json.encode(payload), timeout=5))


# -- only the operator -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def guarded(revo_tmp: Path, bus_authority, integrations_factory):
    """A NATS of its own (the refusals must not count against the checked servers' logs)
    with an integrations service on it."""
    server = NatsServer(revo_tmp / "nats-integrations-guarded", authority=bus_authority).start()
    service = integrations_factory.start(server.url, "integrations-guarded")
    yield server
    service.stop()
    server.stop()


async def connect_as(server: NatsServer, authority, identity: str, base: Path):
    creds = base / f"{identity}-{time.monotonic_ns()}.creds"
    creds.write_text(authority.issue(identity))
    errors: list[str] = []

    async def on_error(exc: Exception) -> None:
        errors.append(str(exc).lower())

    nc = await nats.connect(
        server.url,
        user_credentials=str(creds),
        inbox_prefix=inbox_prefix(identity_of(creds)),
        error_cb=on_error,
        allow_reconnect=False,
    )
    return nc, errors


@pytest.mark.parametrize("who", ["chat-gateway", "agent-runner", "ci publisher"])
async def test_no_identity_but_the_operator_reaches_the_config_endpoints(
    guarded, bus_authority, revo_tmp, who
):
    tenant = new_tenant()
    identity = ci_identity(tenant) if who == "ci publisher" else who
    nc, errors = await connect_as(guarded, bus_authority, identity, revo_tmp)
    payload = msgspec.json.encode(
        {"tenant": tenant, "integration": {"type": "webhook", "url": "https://evil.example"}}
    )
    try:
        for subject in (subjects.INTEGRATIONS_CONFIG_PUT, subjects.INTEGRATIONS_POLICY_PUT):
            with pytest.raises((nats.errors.TimeoutError, nats.errors.NoRespondersError)):
                await nc.request(subject, payload, timeout=1)
            expected = f'permissions violation for publish to "{subject}"'
            assert any(expected in error for error in errors), errors
    finally:
        await nc.close()
    # The operator, on the same server, is answered: nothing was stored for the tenant.
    operator = await operator_bus(guarded, "pytest-guarded")
    try:
        assert await listed(operator, tenant) == []
        assert (
            await operator.request(
                subjects.INTEGRATIONS_POLICY_GET, PolicyGet(tenant=tenant), CiPolicy
            )
            == CiPolicy()
        )
    finally:
        await operator.close()
