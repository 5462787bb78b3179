"""Settings base: one pydantic-settings class per service, with its own env prefix.

Env names are the contract the Helm chart fills in: `REVO_<SERVICE>_<FIELD>` for the
service's own fields, plus the standard `NATS_URL` and `OTEL_*` variables.
"""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="REVO_", extra="ignore")

    nats_url: str = Field(
        default="nats://127.0.0.1:4222",
        validation_alias=AliasChoices("NATS_URL", "REVO_NATS_URL"),
    )
    # The service's NATS credentials (a `.creds` file: its bus identity, DESIGN.md §2).
    # Unset only against a nats-server without authentication.
    nats_creds: str | None = Field(
        default=None,
        validation_alias=AliasChoices("NATS_CREDS", "REVO_NATS_CREDS"),
    )
    http_host: str = "0.0.0.0"
    # Port of /metrics, /healthz and /readyz.
    http_port: int = 8100
    log_level: str = "INFO"
    log_json: bool | None = None
    # Seconds that SIGTERM waits for in-flight work before cancelling it.
    drain_grace_s: float = 30.0


def database_url_field(env_prefix: str):
    """`database_url` of a service that keeps state: `DATABASE_URL`, `REVO_DATABASE_URL` or
    the service's own `<prefix>DATABASE_URL` (the Helm chart sets that one)."""
    return Field(
        default="postgresql://postgres@127.0.0.1:5433/postgres",
        validation_alias=AliasChoices(
            "DATABASE_URL", "REVO_DATABASE_URL", f"{env_prefix}DATABASE_URL"
        ),
    )
