"""Usage events become priced rows; bad ones are dead-lettered with their reason."""

from __future__ import annotations

import asyncio

import msgspec
from ledger_testkit import (
    expected_cloud_cost,
    expected_cost,
    new_tenant,
    publish,
    publish_raw,
    recorded,
    usage_event,
    wait_recorded,
)
from nats.js.api import ConsumerConfig, DeliverPolicy

from revo_contracts import subjects
from revo_contracts.ledger import UsageDeadLetter
from revo_contracts.streams import USAGE_DEAD
from revo_core.testing.metrics import wait_for_metric
from revo_core.tracing import current_ids


async def test_each_event_is_priced_with_its_cost_and_its_cloud_equivalent(
    ledger, ledger_bus, postgres
):
    tenant = new_tenant()
    events = [
        usage_event(tenant, model="local-small", prompt_tokens=1000, completion_tokens=500),
        usage_event(
            tenant, model="cloud-big", provider="openai", prompt_tokens=7, completion_tokens=3
        ),
        usage_event(
            tenant, model="cloud-odd", provider="openai", prompt_tokens=3, completion_tokens=1
        ),
        usage_event(tenant, model="some-local-model", prompt_tokens=10, completion_tokens=10),
    ]

    await publish(ledger_bus, events)
    seen = await wait_recorded(postgres.dsn, tenant, len(events))

    assert seen["events"] == 4
    assert seen["cost"] == sum(expected_cost(e) for e in events)
    assert seen["cloud"] == sum(expected_cloud_cost(e) for e in events)
    assert seen["daily_cost"] == seen["cost"] and seen["daily_events"] == 4


async def test_an_event_of_an_unknown_cloud_model_is_recorded_at_no_cost_and_counted(
    ledger, ledger_bus, postgres
):
    tenant = new_tenant()
    event = usage_event(tenant, model="mystery", provider="acme-ai", prompt_tokens=5)

    await publish(ledger_bus, [event])
    seen = await wait_recorded(postgres.dsn, tenant, 1)

    assert seen["events"] == 1 and seen["cost"] == 0
    assert (
        await wait_for_metric(ledger, "revo_ledger_unpriced_events_total", 1, model="mystery") == 1
    )


async def dead_letters(bus, tenant: str, expected: int, timeout: float = 10.0) -> list:
    """Dead letters whose payload mentions the tenant."""
    sub = await bus.js.pull_subscribe(
        subjects.USAGE_DEAD_ALL,
        durable=None,
        stream=USAGE_DEAD.name,
        config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL),
    )
    found: list[tuple[str, UsageDeadLetter]] = []
    end = asyncio.get_running_loop().time() + timeout
    while len(found) < expected and asyncio.get_running_loop().time() < end:
        try:
            batch = await sub.fetch(100, timeout=0.5)
        except Exception:
            continue
        for msg in batch:
            letter = msgspec.json.decode(msg.data, type=UsageDeadLetter)
            if tenant in (letter.payload or "") or tenant in letter.subject:
                found.append((msg.subject, letter))
            await msg.ack()
    await sub.unsubscribe()
    return found


async def test_bad_events_are_dead_lettered_with_their_reason_and_good_ones_recorded(
    ledger, ledger_bus, postgres
):
    tenant = new_tenant()
    good = usage_event(tenant, prompt_tokens=10, completion_tokens=10)
    subject = subjects.usage(tenant)
    bad = {
        "malformed": b'{"event_id": "x", "tenant": "' + tenant.encode() + b'", ',
        "invalid": msgspec.json.encode({"tenant": tenant, "model": "m"}),
        "negative_tokens": msgspec.json.encode(usage_event(tenant, prompt_tokens=-5)),
        "absurd_tokens": msgspec.json.encode(usage_event(tenant, completion_tokens=10**9)),
    }
    for data in bad.values():
        await publish_raw(ledger_bus, subject, data)
    # Sent on another tenant's subject: the subject's tenant is the one NATS fenced.
    other = new_tenant()
    await publish_raw(ledger_bus, subjects.usage(other), msgspec.json.encode(usage_event(tenant)))
    await publish(ledger_bus, [good])

    letters = await dead_letters(ledger_bus, tenant, expected=5)
    seen = await wait_recorded(postgres.dsn, tenant, 1)

    reasons = sorted(letter.reason for _, letter in letters)
    assert reasons == sorted([*bad, "tenant_mismatch"])
    assert all(s == subjects.usage_dead(letter.reason) for s, letter in letters)
    malformed = next(letter for _, letter in letters if letter.reason == "malformed")
    assert malformed.payload == bad["malformed"].decode() and malformed.subject == subject
    assert malformed.detail and malformed.stream_seq
    assert seen["events"] == 1
    assert await recorded(postgres.dsn, other) == await recorded(postgres.dsn, new_tenant())
    for reason in bad:
        assert await wait_for_metric(ledger, "revo_ledger_dead_letters_total", 1, reason=reason)


async def test_the_ledgers_recording_joins_the_trace_of_the_usage_event(
    ledger, ledger_bus, otlp_receiver
):
    from opentelemetry import trace

    tenant = new_tenant()
    event = usage_event(tenant, model="cloud-ref", provider="openai", prompt_tokens=1000)
    with trace.get_tracer("test").start_as_current_span("inference"):
        trace_id, _ = current_ids()
        await ledger_bus.js_publish(subjects.usage(tenant), event, msg_id=event.event_id)

    span = await asyncio.to_thread(otlp_receiver.wait_for, trace_id, f"usage.{tenant} process")

    assert span.service == "cost-ledger" and span.parent_span_id
    assert span.attributes["revo.usage.event_id"] == event.event_id
    assert span.attributes["revo.ledger.cost_usd"] == 0.001
    assert span.attributes["revo.ledger.duplicate"] is False


def test_dead_letters_live_outside_the_usage_stream():
    # Inside `usage.>` a dead letter would come back to the ledger as a usage event.
    assert not subjects.usage_dead("malformed").startswith("usage.")


async def test_a_ledger_stops_cleanly_on_sigterm_and_another_records_the_rest(
    own_nats, own_bus, ledger_factory, test_prices_file, postgres
):
    env = {"REVO_COST_LEDGER_PRICES_FILE": str(test_prices_file)}
    first = ledger_factory.start(own_nats.url, "ledger-sigterm-1", **env)
    tenant = new_tenant()
    events = [usage_event(tenant, completion_tokens=i) for i in range(3_000)]
    await publish(own_bus, events)

    code = await asyncio.to_thread(first.stop, 15)

    assert code == 0, first.log_tail()
    ledger_factory.start(own_nats.url, "ledger-sigterm-2", **env)
    seen = await wait_recorded(postgres.dsn, tenant, len(events))
    assert seen["events"] == len(events)
    assert seen["cost"] == sum(expected_cost(e) for e in events)
