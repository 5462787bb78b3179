"""Prometheus metrics of the agent-runner."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RUNS_STARTED = Counter(
    "revo_runs_started_total",
    "Runs taken from the queue, by agent and attempt kind.",
    ["agent", "kind"],
)
RUNS_ENDED = Counter(
    "revo_runs_ended_total", "Runs ended, by agent and status.", ["agent", "status"]
)
RUN_SECONDS = Histogram(
    "revo_run_duration_seconds",
    "From taking a run to its last event.",
    ["agent"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
)
ACTIVE_RUNS = Gauge("revo_runs_active", "Runs being executed by this replica now.")
REJECTED = Counter(
    "revo_runs_rejected_total",
    "Deliveries not executed, by reason (malformed, other_tenant, held_elsewhere, ended, "
    "running_here).",
    ["reason"],
)
RUNS_RECONCILED = Counter(
    "revo_runs_reconciled_total",
    "Rows left running with a stale claim brought to the end their event log holds, by status.",
    ["status"],
)
TOOL_CALLS = Counter(
    "revo_tool_calls_total", "Tool calls, by tool and outcome (ok, error).", ["tool", "outcome"]
)
MODEL_CALLS = Counter(
    "revo_model_calls_total", "Model calls, by agent and outcome.", ["agent", "outcome"]
)
EVENT_WRITE_SECONDS = Histogram(
    "revo_run_event_write_seconds",
    "From appending an event to its being in Postgres and published to RUN_EVENTS.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5),
)
