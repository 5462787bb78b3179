"""Settings of the chat gateway (env prefix REVO_CHAT_GATEWAY_)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from revo_contracts.gateway_http import CI_EVENT_MAX_BYTES
from revo_core.settings import ServiceSettings, database_url_field


class GatewaySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="REVO_CHAT_GATEWAY_", extra="ignore")

    http_port: int = 8080
    database_url: str = database_url_field("REVO_CHAT_GATEWAY_")
    # JWT bearer tokens: HS256 with this secret, and/or RS256 with this PEM public key.
    # Neither set: only API keys are accepted.
    jwt_secret: str | None = None
    jwt_public_key: str | None = None
    jwt_audience: str = "revo"
    # Largest request body (and, later, WebSocket frame) accepted, in bytes.
    max_message_bytes: int = 256 * 1024
    # Per API key (or token subject): requests per minute and runs in flight at once.
    rate_limit_per_minute: int = 120
    max_concurrent_runs: int = 8
    # Chat sessions a caller may open per minute (each is a row in Postgres).
    new_sessions_per_minute: int = 30
    # Frames waiting to go to one chat WebSocket; a client that falls further behind is closed.
    ws_queue_frames: int = 1000
    # How long a streamed or waited-on run may take before the request gives up on it.
    run_timeout_s: float = 600.0
    # POST /v1/ci/events: the largest body, counted after gzip decompression (413 beyond),
    # and how long to wait for the CI_EVENTS stream's ack before answering 503.
    ci_event_max_bytes: int = CI_EVENT_MAX_BYTES
    ci_publish_timeout_s: float = 5.0
    # At start, runs of chat sessions this recent with no end stored are followed to their end
    # (a replica that followed them stopped); older ones are left as they are.
    adopt_runs_within_s: float = 24 * 3600.0
