"""Prometheus metrics shared by every service's endpoints; /metrics serves the registry."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter(
    "revo_requests_total",
    "Requests handled, by endpoint and outcome (ok or an error code).",
    ["service", "endpoint", "outcome"],
)
REQUEST_SECONDS = Histogram(
    "revo_request_duration_seconds",
    "Time from receiving a request to its last reply message.",
    ["service", "endpoint"],
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
IN_FLIGHT = Gauge("revo_requests_in_flight", "Requests being handled now.", ["service", "endpoint"])
CANCELLED = Counter(
    "revo_streams_cancelled_total",
    "Streamed requests stopped early, by reason (caller_cancel, caller_gone, deadline).",
    ["service", "endpoint", "reason"],
)
