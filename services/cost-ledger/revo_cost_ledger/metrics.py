"""Prometheus metrics of the cost ledger (request counts and latencies of the ledger.*
endpoints are revo_core's revo_requests_total / revo_request_duration_seconds)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

USAGE_EVENTS = Counter(
    "revo_ledger_usage_events_total",
    "Usage event deliveries, by outcome: recorded (new row), duplicate (its event_id was "
    "recorded already), dead_lettered.",
    ["outcome"],
)
DEAD_LETTERS = Counter(
    "revo_ledger_dead_letters_total",
    "Usage events sent to USAGE_DEAD, by reason.",
    ["reason"],
)
UNPRICED = Counter(
    "revo_ledger_unpriced_events_total",
    "Usage events recorded at cost 0 because the price table does not know their model.",
    ["provider", "model"],
)
TOKENS = Counter(
    "revo_ledger_tokens_total",
    "Tokens recorded, by where they ran (local, cloud): the local share is local / all.",
    ["where"],
)
COST_USD = Counter(
    "revo_ledger_cost_usd_total",
    "Cost recorded, and what the same tokens would have cost on the reference cloud model.",
    ["measure"],
)
BATCH_SECONDS = Histogram(
    "revo_ledger_batch_write_seconds",
    "Writing one batch of usage events to Postgres (one transaction).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
BATCH_EVENTS = Histogram(
    "revo_ledger_batch_events",
    "Usage events per written batch.",
    buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000),
)
WRITE_FAILURES = Counter(
    "revo_ledger_write_failures_total",
    "Batches whose write failed (retried; after the last retry the events are redelivered).",
)
RESERVE_SECONDS = Histogram(
    "revo_ledger_reserve_seconds",
    "ledger.reserve: from receiving the request to the decision being committed.",
    buckets=(0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.5),
)
RESERVATIONS = Counter(
    "revo_ledger_reservations_total",
    "ledger.reserve decisions: granted, budget_exceeded (a budget would be exceeded), "
    "no_budget (no budget and the default policy denies).",
    ["outcome"],
)
BUDGET_EXCEEDED = Counter(
    "revo_ledger_budget_exceeded_total",
    "Reservations refused with budget_exceeded (either reason).",
)
SETTLEMENTS = Counter(
    "revo_ledger_settlements_total", "ledger.settle results, by status.", ["status"]
)
HOLDS_EXPIRED = Counter(
    "revo_ledger_holds_expired_total", "Holds that ran out before being settled or recorded."
)
ALERTS = Counter(
    "revo_ledger_alerts_total", "Budget alerts published, by threshold.", ["threshold"]
)
PRICE_LOADS = Counter(
    "revo_ledger_price_table_loads_total",
    "Price table loads, by outcome (loaded, rejected).",
    ["outcome"],
)
PRICE_TABLE_OK = Gauge(
    "revo_ledger_price_table_ok",
    "1 when the last load of the price table succeeded; 0 while a rejected one is pending "
    "(the last good table stays in force).",
)
