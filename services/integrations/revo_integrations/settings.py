"""Settings of the integrations service (env prefix REVO_INTEGRATIONS_)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from revo_core.settings import ServiceSettings, database_url_field


class IntegrationsSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="REVO_INTEGRATIONS_", extra="ignore")

    # The public listener of provider webhooks (/hooks/...) is this same port, beside
    # /metrics, /healthz and /readyz.
    http_port: int = 8105
    database_url: str = database_url_field("REVO_INTEGRATIONS_")
    # Fernet keys (comma-separated, urlsafe base64 of 32 bytes) that encrypt the tenants'
    # secrets at rest: the first encrypts, every one decrypts. With more than one, the
    # service re-encrypts every row under the first at start; then the old key can go
    # (docs/services/integrations.md, "Secrets").
    secret_keys: str = Field(default="", repr=False)
    # A webhook body larger than this is refused with 413 (GitHub's own limit is 25 MB).
    max_body_bytes: int = 25 * 1024 * 1024
    # How often the runs the CI trigger started are checked for their end, to announce it.
    announce_every_s: float = 1.0
    # A CI event the trigger took but did not ack (the service died) comes back after this.
    ci_ack_wait_s: float = 30.0

    # Provider webhooks (webhooks.py, deliveries.py). A tenant's integration is read from
    # Postgres at most this often per replica (a changed secret applies within it).
    hooks_config_cache_s: float = 5.0
    # An accepted delivery whose log is still being fetched is held by one replica for this
    # long (renewed while it works); once it lapses (the replica died) another replica, or
    # this one restarted, completes it. Checked every `hooks_sweep_s`.
    hooks_lease_s: float = 60.0
    hooks_sweep_s: float = 5.0
    # Delivery ids are kept this long to refuse redeliveries (GitHub redelivers for days).
    hooks_keep_days: float = 30.0
    # One request to a provider's API (a job list, a log) may take this long; a log fetch is
    # tried this many times (exponential backoff) before the event goes out without its log.
    log_fetch_timeout_s: float = 60.0
    log_fetch_attempts: int = 5
    log_fetch_backoff_s: float = 1.0

    # -- notifications out (docs/services/integrations-notify.md) --
    # Failed attempts before a notification goes to NOTIFY_DEAD with its last error.
    notify_max_attempts: int = Field(default=8, ge=1)
    # Backoff after the n-th failure: base * 2^(n-1), capped, times a jitter in [0.5, 1];
    # a destination's Retry-After is honoured when it asks for longer.
    notify_backoff_base_s: float = Field(default=2.0, gt=0)
    notify_backoff_max_s: float = Field(default=600.0, gt=0)
    # JetStream's redelivery wait of an unacknowledged notification (a crashed service's
    # deliveries come back after it); a slow destination is kept alive by in-progress acks.
    notify_ack_wait_s: float = Field(default=30.0, gt=0)
    notify_http_timeout_s: float = Field(default=15.0, gt=0)
    # Deliveries in flight per channel.
    notify_concurrency: int = Field(default=64, ge=1)
    # Messages per second per destination (0 = no cap): Slack allows about one per second
    # per channel; GitHub's secondary limit is about 80 content-creating requests a minute.
    notify_rate_slack: float = Field(default=1.0, ge=0)
    notify_rate_github: float = Field(default=1.3, ge=0)
    notify_rate_jira: float = Field(default=5.0, ge=0)
    notify_rate_webhook: float = Field(default=0.0, ge=0)
    # Short bursts above the rate that a destination tolerates.
    notify_rate_burst: int = Field(default=3, ge=1)
