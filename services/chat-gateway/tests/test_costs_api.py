"""`GET /v1/costs`: the cost ledger's report for the caller's tenant, and only that."""

from __future__ import annotations

import asyncio
import time
import uuid

import msgspec
import pytest
from gateway_testkit import base_url, http

from revo_contracts import subjects
from revo_contracts.usage import UsageEvent
from revo_core import headers
from revo_core.testing.fixtures import create_api_key


def _tenant() -> str:
    return f"t{uuid.uuid4().hex[:8]}"


def _event(tenant: str, model: str, provider: str, prompt: int, completion: int, **fields):
    event_id = f"ev-{uuid.uuid4().hex}"
    return UsageEvent(
        event_id=event_id,
        tenant=tenant,
        request_id=event_id,
        model=model,
        provider=provider,
        prompt_tokens=prompt,
        completion_tokens=completion,
        created_at=time.time(),
        **fields,
    )


async def _publish(bus, events: list[UsageEvent]) -> None:
    for event in events:
        await bus.js.publish(
            subjects.usage(event.tenant),
            msgspec.json.encode(event),
            headers={headers.MSG_ID: event.event_id},
        )


async def _costs(gateway, key: str, query: str = ""):
    return await asyncio.to_thread(http, "GET", f"{base_url(gateway)}/v1/costs{query}", key)


async def _recorded(gateway, key: str, events: int, query: str = "") -> dict:
    """The report once the ledger has recorded `events` of the tenant's events."""
    for _ in range(100):
        status, _, body = await _costs(gateway, key, query)
        assert status == 200, body
        if body["totals"]["events"] >= events:
            return body
        await asyncio.sleep(0.1)
    raise AssertionError(f"the ledger recorded {body['totals']['events']} of {events} events")


async def test_a_tenant_sees_its_spend_priced_and_never_another_tenants(
    scripted_gateway, scripted_bus, scripted_ledger
):
    tenant, other = _tenant(), _tenant()
    key = await create_api_key(scripted_bus, tenant)
    await _publish(
        scripted_bus,
        [
            _event(tenant, "gpt-4o-mini", "openai", 2_000, 1_000, run_id="r-small"),
            _event(tenant, "gpt-4o", "openai", 1_000, 100, run_id="r-big"),
            _event(tenant, "smollm2-135m-instruct", "local", 1_000, 500, run_id="r-local"),
            _event(other, "gpt-4o", "openai", 1_000_000, 0, run_id="r-other"),
        ],
    )

    # The tenant comes from the key: asking for another one in the query changes nothing.
    report = await _recorded(scripted_gateway, key, 3, f"?tenant={other}&top=2")

    assert report["tenant"] == tenant
    assert {row["tenant"] for row in report["rows"]} == {tenant}
    cost_of = {row["model"]: row["cost_micros"] for row in report["rows"]}
    # $0.15/$0.60 and $2.50/$10.00 per 1M tokens in the shipped price table.
    assert cost_of["gpt-4o-mini"] == 900 and cost_of["gpt-4o"] == 3_500
    totals = report["totals"]
    assert totals["events"] == 3
    assert (totals["local_tokens"], totals["cloud_tokens"]) == (1_500, 4_100)
    assert totals["local_share"] == pytest.approx(1_500 / 5_600)
    assert [run["run_id"] for run in report["top_runs"]] == ["r-big", "r-small"]
    assert report["reference_model"] == "gpt-4o-mini"


@pytest.mark.parametrize(
    "query", ["?since=last-tuesday", "?until=2026-13-40", "?top=1000", "?top=many"]
)
async def test_a_query_the_report_cannot_take_is_a_400(scripted_gateway, scripted_bus, query):
    key = await create_api_key(scripted_bus, _tenant())

    status, _, body = await _costs(scripted_gateway, key, query)

    assert status == 400, body
    assert body["error"]["code"] == "invalid_request"


@pytest.mark.parametrize(
    "query",
    [
        "?since=99999999999999999999",
        "?since=-99999999999",
        "?since=99999999d",
        "?until=nan",
        f"?since={'9' * 5000}d",
    ],
)
async def test_a_time_no_date_can_hold_is_a_400_that_names_the_field_not_an_exception(
    scripted_gateway, scripted_bus, query
):
    key = await create_api_key(scripted_bus, _tenant())

    status, _, body = await _costs(scripted_gateway, key, query)

    assert status == 400, body
    assert body["error"]["code"] == "invalid_request"
    assert query[1:6] in body["error"]["message"]
    assert "Error" not in body["error"]["message"]


async def test_an_empty_since_or_until_reads_as_the_default_period(
    scripted_gateway, scripted_ledger, scripted_bus
):
    key = await create_api_key(scripted_bus, _tenant())

    status, _, body = await _costs(scripted_gateway, key, "?since=&until=")

    assert status == 200, body
    assert body["totals"]["events"] == 0


async def test_costs_need_credentials(scripted_gateway):
    status, _, body = await _costs(scripted_gateway, "not-a-key")

    assert status == 401, body
