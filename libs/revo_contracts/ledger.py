"""Messages of the cost ledger: budgets, reservations, reports, alerts, dead letters.

Money on the wire is an integer number of micro-dollars (`*_micros`, USD x 10^6), so every
language reads it exactly. The ledger itself keeps each usage row's cost in pico-dollars
(USD x 10^12), exact for any price with up to six decimals per 1M tokens; figures are
rounded to micro-dollars only when they are sent.

`ledger.reserve` holds an estimated amount against the tenant's budget before a paid call
and answers `budget_exceeded` when it does not fit; `ledger.settle` replaces the hold with
the actual cost; the usage event of the same request (`request_id`) closes the hold when
the ledger records it, so nothing is counted twice. Holds never settled expire.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from revo_contracts.inference import RequestId, TenantId

# A key id, a reservation id: subject-token-like, so they can be logged and matched safely.
Ident = Annotated[str, Meta(pattern=r"^[A-Za-z0-9_.:-]{1,128}$")]
# Up to a million dollars per reservation, per budget: beyond that it is a mistake.
Micros = Annotated[int, Meta(ge=0, le=10**12)]
Tokens = Annotated[int, Meta(ge=0, le=100_000_000)]
Period = Literal["day", "month"]
# A unix time a report can name: from 1970 through the last second of the year 9999 (what
# a date can hold; beyond it a report's day cannot be computed).
ReportTime = Annotated[float, Meta(ge=0, le=253_402_300_799)]


# -- budgets ------------------------------------------------------------------------------


class BudgetRequest(msgspec.Struct, kw_only=True, omit_defaults=True):
    """`get` a budget with what is spent and held in its current period; `set` (create or
    change) or `delete` it. Without `api_key_id` it is the tenant's budget, covering all of
    its keys; with one, that key's own budget (both must fit for a reservation)."""

    tenant: TenantId
    action: Literal["get", "set", "delete"] = "get"
    api_key_id: Ident | None = None
    period: Period = "month"
    limit_micros: Micros | None = None  # required by `set`


class BudgetStatus(msgspec.Struct, kw_only=True):
    tenant: str
    api_key_id: str | None = None
    # "budget": a budget applies; otherwise the ledger's default policy for tenants without
    # one: "deny" (no paid calls) or "allow" (paid calls without a limit).
    policy: Literal["budget", "deny", "allow"]
    period: Period | None = None
    period_start: str | None = None  # ISO date (UTC) of the current period's first day
    limit_micros: int | None = None
    spent_micros: int = 0  # recorded usage in the current period
    held_micros: int = 0  # open holds (reserved or settled, not yet recorded)
    remaining_micros: int | None = None
    # Thresholds (percent of the limit) already alerted in the current period.
    alerts_sent: list[int] = []


# -- reserve / settle ---------------------------------------------------------------------


class ReserveRequest(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Hold money before a paid call. Give the estimate as `amount_micros`, or give `model`
    (a cloud model of the price table) with `prompt_tokens` and `max_completion_tokens`
    and the ledger prices it. A repeated `reservation_id` returns the existing hold."""

    tenant: TenantId
    amount_micros: Micros | None = None
    model: str | None = None
    prompt_tokens: Tokens = 0
    max_completion_tokens: Tokens = 0
    api_key_id: Ident | None = None
    # The inference request the hold is for: its usage event closes the hold.
    request_id: RequestId | None = None
    reservation_id: Ident | None = None
    # How long an unsettled hold counts; the ledger's default when absent.
    ttl_s: Annotated[float, Meta(gt=0, le=86_400)] | None = None


class Reservation(msgspec.Struct, kw_only=True):
    reservation_id: str
    tenant: str
    amount_micros: int
    expires_at: float  # unix time
    # Left in the tightest budget after this hold; None when no budget applies.
    remaining_micros: int | None = None


class SettleRequest(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Replace a hold with the actual cost: `cost_micros`, or `model` with the tokens used
    (priced by the ledger's table). A cost of 0 releases the hold (the call never ran)."""

    reservation_id: Ident
    tenant: TenantId
    cost_micros: Micros | None = None
    model: str | None = None
    provider: str | None = None
    prompt_tokens: Tokens = 0
    completion_tokens: Tokens = 0


class Settlement(msgspec.Struct, kw_only=True):
    reservation_id: str
    # settled: counts at its actual cost until the request's usage event is recorded;
    # released: counts no more; recorded: the usage event was recorded already.
    status: Literal["settled", "released", "recorded"]
    amount_micros: int


# -- reports ------------------------------------------------------------------------------


class ReportRequest(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Spend from the UTC day of `since` through the UTC day of `until` (unix times; by
    default the last 30 days up to today). Without `tenant`: every tenant (operators)."""

    tenant: TenantId | None = None
    since: ReportTime | None = None
    until: ReportTime | None = None
    top_runs: Annotated[int, Meta(ge=0, le=100)] = 10


class SpendRow(msgspec.Struct, kw_only=True):
    """Spend of one (day, tenant, model, provider)."""

    day: str  # ISO date, UTC
    tenant: str
    model: str
    provider: str
    events: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_micros: int = 0
    cloud_equivalent_micros: int = 0
    # Events whose model the price table did not know (recorded at cost 0).
    unpriced_events: int = 0


class RunCost(msgspec.Struct, kw_only=True):
    run_id: str
    tenant: str
    cost_micros: int
    tokens: int
    events: int


class SpendTotals(msgspec.Struct, kw_only=True):
    events: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    local_tokens: int = 0
    cloud_tokens: int = 0
    # local_tokens / all tokens; 0 when there were none.
    local_share: float = 0.0
    cost_micros: int = 0
    cloud_equivalent_micros: int = 0
    # cloud-equivalent minus cost: what running locally saved (negative: it cost more).
    savings_micros: int = 0
    unpriced_events: int = 0


class CostReport(msgspec.Struct, kw_only=True):
    since: str  # ISO date, UTC
    until: str
    tenant: str | None = None
    totals: SpendTotals
    rows: list[SpendRow] = []
    top_runs: list[RunCost] = []
    reference_model: str | None = None  # the cloud model of the cloud-equivalent figures


# -- prices -------------------------------------------------------------------------------


class PricesReloadRequest(msgspec.Struct, kw_only=True):
    pass


class PricesInfo(msgspec.Struct, kw_only=True):
    """The price table in force on the replica that answered, and the last failed load."""

    version: str  # first 12 hex digits of the file's sha256
    path: str
    loaded_at: float
    reference_model: str
    cloud_models: list[str]
    local_models: list[str]
    last_error: str | None = None
    last_error_at: float | None = None


# -- published by the ledger --------------------------------------------------------------


class BudgetAlert(msgspec.Struct, kw_only=True):
    """On `alerts.<tenant>` when recorded spend crosses a threshold of a budget; once per
    threshold per period (header Nats-Msg-Id = `budget-<alert id>` for subscribers that
    want to drop the rare repeat after a ledger crash)."""

    tenant: str
    threshold_pct: int
    period: Period
    period_start: str  # ISO date, UTC
    spent_micros: int
    limit_micros: int
    api_key_id: str | None = None
    kind: Literal["budget"] = "budget"
    created_at: float = 0.0


class UsageDeadLetter(msgspec.Struct, kw_only=True):
    """A usage event the ledger could not record, on `usage_dead.<reason>` (stream
    USAGE_DEAD). The original bytes are in `payload` (UTF-8) or `payload_base64`."""

    reason: str  # malformed, tenant_mismatch, negative_tokens, absurd_tokens, ...
    detail: str
    subject: str
    received_at: float
    payload: str | None = None
    payload_base64: str | None = None
    stream_seq: int | None = None
