"""Settings of the cost ledger (env prefix REVO_COST_LEDGER_)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from revo_core.settings import ServiceSettings, database_url_field

DEFAULT_PRICES_FILE = Path(__file__).with_name("prices.yaml")


class CostLedgerSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="REVO_COST_LEDGER_", extra="ignore")

    http_port: int = 8104
    database_url: str = database_url_field("REVO_COST_LEDGER_")
    prices_file: Path = DEFAULT_PRICES_FILE
    # The price file's mtime is checked this often (besides SIGHUP and ledger.prices.reload).
    prices_check_s: float = 2.0
    # Usage events written to Postgres in one transaction, at most.
    batch_size: int = Field(default=1000, ge=1, le=10_000)
    # Batches written at once (each its own transaction): while some wait on Postgres,
    # others are built and acked.
    writers: int = Field(default=4, ge=1, le=16)
    # JetStream redelivers an event not acked this long after delivery (a ledger that died).
    ack_wait_s: float = 30.0
    # Deliveries held unacked by all replicas together; the server stops delivering beyond.
    max_ack_pending: int = 20_000
    # A usage event claiming more tokens than this is rejected (dead-lettered) as absurd.
    max_tokens_per_event: int = 10_000_000
    # Tenants without a budget: "deny" refuses every reservation, "allow" grants without limit.
    default_policy: Literal["deny", "allow"] = "deny"
    # false: reservations commit without waiting for Postgres's WAL flush (about a
    # millisecond less per ledger.reserve); a Postgres crash may then lose the holds of the
    # last fraction of a second, so budgets could be overrun by those.
    durable_reservations: bool = True
    hold_ttl_s: float = 300.0
    # A settled hold counts until its usage event is recorded, or this long at most.
    settled_hold_ttl_s: float = 3600.0
    # Reservations decided in one database call, at most (group commit).
    reserve_batch: int = Field(default=256, ge=1, le=4096)
    alert_thresholds: list[int] = [50, 80, 100]
    # Holds closed longer ago than this are deleted by the sweeper.
    keep_closed_holds_days: int = 7
    sweep_every_s: float = 30.0
