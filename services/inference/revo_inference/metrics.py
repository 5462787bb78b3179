"""Inference metrics on /metrics, beside the endpoint metrics of revo_core."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

TTFT_SECONDS = Histogram(
    "revo_inference_ttft_seconds",
    "Time from receiving a chat request to its first token.",
    ["model"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
DECODE_TOKENS_PER_SECOND = Histogram(
    "revo_inference_decode_tokens_per_second",
    "Per request: completion tokens divided by the time after the first token.",
    ["model"],
    buckets=(1, 2, 5, 10, 20, 40, 80, 160, 320, 640),
)
PROMPT_TOKENS = Counter("revo_inference_prompt_tokens_total", "Prompt tokens.", ["model"])
COMPLETION_TOKENS = Counter(
    "revo_inference_completion_tokens_total", "Generated tokens (rate() = tokens/s).", ["model"]
)
RUNNING = Gauge("revo_inference_running_requests", "Requests the engine is running now.", ["model"])
WAITING = Gauge(
    "revo_inference_waiting_requests", "Requests queued in the engine, not yet running.", ["model"]
)
UNFINISHED = Gauge(
    "revo_inference_unfinished_requests",
    "Requests vLLM holds now (not yet finished or aborted), read from the engine.",
    ["model"],
)
USAGE_PUBLISH_FAILURES = Counter(
    "revo_inference_usage_publish_failures_total",
    "Usage events that could not be stored in the USAGE stream after retries.",
)
ROUTED = Counter(
    "revo_inference_routed_requests_total",
    "Chat requests by where they ran (local/cloud) and the router's reason.",
    ["route", "reason"],
)
FALLBACKS = Counter(
    "revo_inference_fallbacks_total",
    "Chat requests the local model could not serve, by reason (whether or not cloud took them).",
    ["reason"],
)
LOCAL_SHARE = Gauge(
    "revo_inference_local_share",
    "Share of the chat requests routed since start that ran locally (0-1).",
)
PROVIDER_FAILURES = Counter(
    "revo_inference_provider_failures_total",
    "Cloud provider calls that failed before their first token (failed) or mid-stream (cut).",
    ["provider", "kind"],
)


class _Share:
    local = 0
    total = 0


def count_route(route: str, reason: str) -> None:
    ROUTED.labels(route, reason).inc()
    _Share.total += 1
    _Share.local += route == "local"
    LOCAL_SHARE.set(_Share.local / _Share.total)
