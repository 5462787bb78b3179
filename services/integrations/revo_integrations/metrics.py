"""Prometheus metrics of the integrations service (served on its /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

WEBHOOKS = Counter(
    "revo_integrations_webhooks_total",
    "Provider webhooks, by provider and outcome: accepted, duplicate, ignored (an event "
    "type or action revo does not act on), bad_signature, unknown_tenant, too_large, invalid.",
    ["provider", "outcome"],
)
LOG_FETCH_SECONDS = Histogram(
    "revo_integrations_log_fetch_seconds",
    "Time to fetch a failed job's log from the provider's API and store it.",
    ["provider"],
)
LOG_FETCH_BYTES = Counter(
    "revo_integrations_log_fetch_bytes_total",
    "Bytes of CI logs fetched from providers' APIs.",
    ["provider"],
)
NOTIFICATIONS = Counter(
    "revo_integrations_notifications_total",
    "Notification deliveries, by channel and outcome: delivered, retried, dead, duplicate "
    "(already delivered: a redelivery), deferred (rate cap), refused (malformed or tenant "
    "mismatch).",
    ["channel", "outcome"],
)
CI_RUNS = Counter(
    "revo_integrations_ci_runs_total",
    "CI events, by what the CI trigger made of them: submitted (a run), deduplicated (the "
    "same failure in the window, or a redelivery of a submitted one), not_failed, filtered "
    "(repository or branch), disabled (by the tenant's policy), refused (malformed, or a "
    "tenant other than its subject's), retried (Postgres or NATS unavailable: redelivered).",
    ["outcome"],
)
HOOK_DELIVERIES = Counter(
    "revo_integrations_hook_deliveries_total",
    "Accepted webhook deliveries completed after the answer (a log to fetch, or a publish "
    "that was not acked at once), by outcome: published (with its log), without_log (the "
    "provider's API did not give it after retries), taken_over (a lapsed lease, e.g. of a "
    "replica that died, completed by this one).",
    ["provider", "outcome"],
)

# -- notifications out (NOTIFICATIONS above counts them by channel and outcome) --
NOTIFY_RETRIES = Counter(
    "revo_integrations_notify_retries_total",
    "Failed notification attempts that will be retried, by channel and why: rate_limited "
    "(429), server_error (5xx), network, timeout.",
    ["channel", "reason"],
)
NOTIFY_DEAD_LETTERS = Counter(
    "revo_integrations_notify_dead_letters_total",
    "Notifications sent to NOTIFY_DEAD, by channel and why: attempts (every attempt "
    "failed) or permanent (the destination refused it, or no integration is configured).",
    ["channel", "reason"],
)
NOTIFY_SECONDS = Histogram(
    "revo_integrations_notify_delivery_seconds",
    "Time of one delivery attempt, the destination's HTTP calls included, by channel.",
    ["channel"],
)
