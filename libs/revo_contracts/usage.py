"""Usage events: one per inference request, published to `usage.<tenant>` (stream USAGE)."""

from __future__ import annotations

from typing import Literal

import msgspec


class UsageEvent(msgspec.Struct, kw_only=True):
    """What one request consumed. `event_id` is also the `Nats-Msg-Id`, so a
    republished event is dropped by JetStream's duplicate window."""

    event_id: str
    tenant: str
    request_id: str
    model: str
    provider: str = "local"
    kind: Literal["chat", "embed"] = "chat"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    duration_ms: float = 0.0
    ttft_ms: float | None = None
    finish_reason: str | None = None
    # Why the router picked this model/provider ("local", later "local_unhealthy", ...).
    route_reason: str = "local"
    run_id: str | None = None
    created_at: float = 0.0
    # The API key the request came in with, when known: per-key budgets count it.
    api_key_id: str | None = None
