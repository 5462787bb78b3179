"""Prometheus metrics of the chat gateway."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

HTTP_REQUESTS = Counter(
    "revo_http_requests_total",
    "HTTP requests answered, by route, method and status.",
    ["route", "method", "status"],
)
HTTP_SECONDS = Histogram(
    "revo_http_request_duration_seconds",
    "From a request's arrival to its response's end (a stream's last byte).",
    ["route"],
    buckets=(0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
WS_CONNECTIONS = Gauge("revo_ws_connections", "Chat WebSockets open now.")
WS_FRAMES = Counter(
    "revo_ws_frames_sent_total",
    "Item and token frames queued to chat WebSockets, by type.",
    ["type"],
)
WS_SLOW_CONSUMERS = Counter(
    "revo_ws_slow_consumers_total", "Chat WebSockets closed because they did not read."
)
WS_MESSAGES = Counter(
    "revo_ws_messages_total", "User messages taken over chat WebSockets (each is a run)."
)
RUNS_ADOPTED = Counter(
    "revo_chat_runs_adopted_total",
    "Chat runs taken up at start, their end not stored by the replica that followed them.",
)
AUDIT_EVENTS = Counter(
    "revo_audit_events_kept_total",
    "Audit events taken from the AUDIT stream, by outcome: stored, refused (malformed, "
    "another tenant's, never storable), retried (Postgres away).",
    ["outcome"],
)
CI_EVENTS_RECEIVED = Counter(
    "revo_ci_events_total",
    "POST /v1/ci/events by outcome (accepted; duplicate: a retry the stream already held; "
    "refused) and HTTP status. Refusals of the credentials themselves (401, 403 by role) "
    'are in revo_http_requests_total{route="/v1/ci/events"}.',
    ["outcome", "status"],
)
CI_LOG_BYTES = Counter(
    "revo_ci_event_log_bytes_total",
    "Bytes of CI logs taken by POST /v1/ci/events, by where they went: inline in the event, "
    "or the CI_LOGS object store.",
    ["stored"],
)
