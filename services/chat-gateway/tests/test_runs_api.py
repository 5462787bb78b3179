"""The REST runs API: a tenant sees, reads and cancels its own runs, and only those."""

from __future__ import annotations

import asyncio
import uuid

import openai
import pytest
from gateway_testkit import audit_of, base_url, http, openai_client, scripted_default

from revo_core.testing.fixtures import create_api_key
from revo_core.testing.scripted_model import Reply, Script, text

MESSAGES = [{"role": "user", "content": "Say hello"}]


def _tenant() -> str:
    return f"t{uuid.uuid4().hex[:8]}"


async def _call(method: str, gateway, path: str, key: str):
    return await asyncio.to_thread(http, method, f"{base_url(gateway)}{path}", key)


async def _finished_run(gateway, key: str, scripted_model) -> str:
    with scripted_default(scripted_model, Script([text("Hello from revo")])):
        raw = await openai_client(gateway, key).chat.completions.with_raw_response.create(
            model="revo/chatty", messages=MESSAGES
        )
    return raw.headers["X-Revo-Run-Id"]


async def test_a_tenant_reads_its_run_with_its_events(
    scripted_gateway, scripted_bus, scripted_model
):
    key = await create_api_key(scripted_bus, _tenant())
    run_id = await _finished_run(scripted_gateway, key, scripted_model)

    status, _, body = await _call("GET", scripted_gateway, f"/v1/runs/{run_id}", key)

    assert status == 200, body
    assert body["run"]["run_id"] == run_id
    assert body["run"]["status"] == "finished"
    assert body["run"]["answer"] == "Hello from revo"
    types = [event["type"] for event in body["events"]]
    assert types[0] == "queued" and types[-1] == "finished"


async def test_another_tenant_can_neither_read_nor_cancel_nor_list_a_run(
    scripted_gateway, scripted_bus, scripted_model
):
    key_a = await create_api_key(scripted_bus, _tenant())
    key_b = await create_api_key(scripted_bus, _tenant())
    run_of_b = await _finished_run(scripted_gateway, key_b, scripted_model)
    run_of_a = await _finished_run(scripted_gateway, key_a, scripted_model)

    read = await _call("GET", scripted_gateway, f"/v1/runs/{run_of_b}", key_a)
    cancel = await _call("POST", scripted_gateway, f"/v1/runs/{run_of_b}/cancel", key_a)
    listed_a = await _call("GET", scripted_gateway, "/v1/runs?tenant=other", key_a)
    listed_b = await _call("GET", scripted_gateway, "/v1/runs", key_b)

    assert read[0] == 404 and read[2]["error"]["code"] == "not_found"
    assert cancel[0] == 404
    assert [run["run_id"] for run in listed_a[2]["runs"]] == [run_of_a]
    assert [run["run_id"] for run in listed_b[2]["runs"]] == [run_of_b]


async def test_runs_are_listed_by_status_agent_and_limit(
    scripted_gateway, scripted_bus, scripted_model
):
    key = await create_api_key(scripted_bus, _tenant())
    for _ in range(2):
        await _finished_run(scripted_gateway, key, scripted_model)

    limited = await _call("GET", scripted_gateway, "/v1/runs?limit=1", key)
    finished = await _call("GET", scripted_gateway, "/v1/runs?status=finished", key)
    by_other_agent = await _call("GET", scripted_gateway, "/v1/runs?agent=assistant", key)
    bad_limit = await _call("GET", scripted_gateway, "/v1/runs?limit=many", key)
    bad_status = await _call("GET", scripted_gateway, "/v1/runs?status=lost", key)

    assert len(limited[2]["runs"]) == 1
    assert len(finished[2]["runs"]) == 2
    assert by_other_agent[2]["runs"] == []
    assert bad_limit[0] == 400 and "limit" in bad_limit[2]["error"]["message"]
    assert bad_status[0] == 400 and "status" in bad_status[2]["error"]["message"]


async def test_a_tenant_cancels_its_running_run(scripted_gateway, scripted_bus, scripted_model):
    tenant = _tenant()
    key = await create_api_key(scripted_bus, tenant)
    gate = asyncio.Event()
    client = openai_client(scripted_gateway, key)

    with scripted_default(scripted_model, Script([Reply(text="never said", gate=gate)])):
        completion = asyncio.create_task(
            client.chat.completions.create(model="revo/chatty", messages=MESSAGES)
        )
        try:
            run_id = await _running_run(scripted_gateway, key)
            status, _, body = await _call(
                "POST", scripted_gateway, f"/v1/runs/{run_id}/cancel", key
            )
            with pytest.raises(openai.APIStatusError) as raised:
                await completion
        finally:
            gate.set()

    assert status == 200, body
    assert body == {"run_id": run_id, "accepted": True, "status": "cancelling"}
    assert raised.value.code == "cancelled"
    # The audit log names who asked: the key, never its secret.
    [event] = await audit_of(scripted_bus, tenant, 1, action="run.cancelled")
    assert (event.actor, event.target) == (f"key:{key.split('_')[1]}", run_id)


async def _running_run(gateway, key: str, within_s: float = 15) -> str:
    async with asyncio.timeout(within_s):
        while True:
            _, _, body = await _call("GET", gateway, "/v1/runs?status=running", key)
            if body["runs"]:
                return body["runs"][0]["run_id"]
            await asyncio.sleep(0.2)
