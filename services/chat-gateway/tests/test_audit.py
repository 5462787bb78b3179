"""The audit log: who did what, recorded by the service that did it, kept by the gateway and
listed to operators (`gateway.audit.list`, `revo audit`); never a secret; a forged event of
another tenant is refused."""

from __future__ import annotations

import asyncio
import sys
import uuid

import msgspec
from gateway_testkit import audit_of, base_url, http

from revo_contracts import subjects
from revo_contracts.ledger import BudgetRequest, BudgetStatus
from revo_contracts.runs import RunSubmit
from revo_core.audit import audit_event, record_audit
from revo_core.runs import RunFollower, cancel_run, event_type, new_run_id, submit_run
from revo_core.testing.fixtures import create_api_key
from revo_core.testing.metrics import metric_value


def _tenant() -> str:
    return f"au{uuid.uuid4().hex[:8]}"


async def test_creating_a_key_is_audited_with_its_id_and_never_the_key(
    scripted_bus, scripted_gateway
):
    tenant = _tenant()
    key = await create_api_key(scripted_bus, tenant, role="admin")
    [event] = await audit_of(scripted_bus, tenant, 1)
    key_id = key.removeprefix("revo_").split("_")[0]
    assert (event.actor, event.action, event.target, event.service) == (
        "operator",
        "key.created",
        key_id,
        "chat-gateway",
    )
    assert event.details == {"role": "admin"}
    assert key.split("_", 2)[2] not in msgspec.json.encode(event).decode()


async def test_setting_and_deleting_a_budget_are_audited(
    scripted_bus, scripted_gateway, scripted_ledger
):
    tenant = _tenant()
    for action in ("set", "delete"):
        await scripted_bus.request(
            subjects.LEDGER_BUDGET,
            BudgetRequest(tenant=tenant, action=action, limit_micros=5_000_000),
            BudgetStatus,
        )
    events = await audit_of(scripted_bus, tenant, 2)
    assert [e.action for e in events] == ["budget.deleted", "budget.set"]  # newest first
    assert events[1].details["limit_micros"] == 5_000_000
    assert {e.service for e in events} == {"cost-ledger"}


async def test_cancelling_a_run_is_audited_with_who_asked(
    scripted_bus, scripted_gateway, scripted_model
):
    tenant = _tenant()
    submit = RunSubmit(run_id=new_run_id(), tenant=tenant, agent="scripted", task="wait")
    async with RunFollower(scripted_bus, tenant, submit.run_id, tokens=False) as events:
        await submit_run(scripted_bus, submit)
        async for event in events:  # the runner holds it (and its row) once it has started
            if event_type(event) == "started":
                break
    await cancel_run(scripted_bus, submit.run_id, "changed my mind", actor="operator")
    [event] = await audit_of(scripted_bus, tenant, 1, action="run.cancelled")
    assert (event.actor, event.target, event.details["reason"]) == (
        "operator",
        submit.run_id,
        "changed my mind",
    )


async def test_an_audit_event_naming_another_tenant_than_its_subject_is_refused(
    scripted_bus, scripted_gateway
):
    tenant, victim = _tenant(), _tenant()
    refused = metric_value(scripted_gateway, "revo_audit_events_kept_total", outcome="refused")
    forged = audit_event(victim, "operator", "key.revoked", target="k")
    await scripted_bus.js_publish(subjects.audit(tenant), forged, msg_id=forged.event_id)
    honest = audit_event(tenant, "operator", "key.revoked", target="k2")
    assert await record_audit(scripted_bus, honest)
    events = await audit_of(scripted_bus, tenant, 1)
    assert [e.target for e in events] == ["k2"]
    assert await audit_of(scripted_bus, victim, 1) == []
    # Counted in /metrics (other tests' refusals may add more meanwhile, never fewer).
    after = metric_value(scripted_gateway, "revo_audit_events_kept_total", outcome="refused")
    assert after >= refused + 1
    assert metric_value(scripted_gateway, "revo_audit_events_kept_total", outcome="stored") >= 1


async def test_revo_audit_prints_the_log_and_refuses_a_bad_since(
    scripted_nats, scripted_bus, scripted_gateway
):
    tenant = _tenant()
    await create_api_key(scripted_bus, tenant)
    await audit_of(scripted_bus, tenant, 1)
    code, out, err = await _revo("--nats-url", scripted_nats.url, "audit", "--tenant", tenant)
    assert code == 0, err
    assert "key.created" in out and tenant in out and "operator" in out
    code, _, err = await _revo(
        "--nats-url", scripted_nats.url, "audit", "--since", "99999999999999999999"
    )
    assert code == 2
    assert "since" in err


async def _revo(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "revo_cli.main",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode or 0, out.decode(), err.decode()


async def test_the_keeper_keeps_consuming_past_events_it_can_never_store(
    scripted_bus, scripted_gateway
):
    tenant = _tenant()
    subject = subjects.audit(tenant)
    nested = b'{"event_id": "deep", "extra": ' + b"[" * 20_000 + b"]" * 20_000 + b"}"
    await scripted_bus.js.publish(subject, nested)
    for poison in (
        audit_event(tenant, "oper\u0000ator", "key.revoked", target="nul"),  # Postgres: no NUL
        msgspec.structs.replace(audit_event(tenant, "operator", "key.revoked"), at=1e300),
    ):
        await scripted_bus.js_publish(subject, poison, msg_id=poison.event_id)
    honest = audit_event(tenant, "operator", "key.revoked", target="after")
    assert await record_audit(scripted_bus, honest)

    events = await audit_of(scripted_bus, tenant, 1)

    assert [e.target for e in events] == ["after"]


async def test_a_tenants_admins_read_its_audit_log_over_http_and_only_its_own(
    scripted_bus, scripted_gateway
):
    tenant, other = _tenant(), _tenant()
    admin = await create_api_key(scripted_bus, tenant, role="admin")
    member = await create_api_key(scripted_bus, tenant, role="member")
    await create_api_key(scripted_bus, other)
    await audit_of(scripted_bus, tenant, 2)
    await audit_of(scripted_bus, other, 1)
    url = f"{base_url(scripted_gateway)}/v1/audit"

    status, _, body = await asyncio.to_thread(http, "GET", f"{url}?action=key.created", admin)
    assert status == 200
    assert [e["tenant"] for e in body["events"]] == [tenant, tenant]
    assert {e["action"] for e in body["events"]} == {"key.created"}

    status, _, body = await asyncio.to_thread(http, "GET", url, member)
    assert (status, body["error"]["code"]) == (403, "forbidden")
    for bad in ("since=99999999999999999999", "since=nan", "limit=0", "action=key.stolen"):
        status, _, body = await asyncio.to_thread(http, "GET", f"{url}?{bad}", admin)
        assert (status, body["error"]["code"]) == (400, "invalid_request"), bad
