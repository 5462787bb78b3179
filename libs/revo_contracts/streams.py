"""JetStream streams, declared once; revo_core.jetstream creates them idempotently."""

from __future__ import annotations

from typing import Literal

import msgspec


class StreamSpec(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    subjects: tuple[str, ...]
    retention: Literal["limits", "workqueue", "interest"] = "limits"
    max_age_s: float = 7 * 24 * 3600
    # Window in which a repeated Nats-Msg-Id is dropped as a duplicate.
    duplicate_window_s: float = 120.0
    max_msg_size: int = 1024 * 1024
    description: str = ""


USAGE = StreamSpec(
    name="USAGE",
    subjects=("usage.>",),
    max_age_s=30 * 24 * 3600,
    duplicate_window_s=3600.0,
    description="One usage event per inference request; consumed by the cost ledger.",
)

RUNS = StreamSpec(
    name="RUNS",
    subjects=("runs.submit.>",),
    retention="workqueue",
    description="Submitted runs; each is taken and acked by one agent-runner replica.",
)

RUN_EVENTS = StreamSpec(
    name="RUN_EVENTS",
    subjects=("runs.events.>",),
    max_age_s=30 * 24 * 3600,
    description="The replayable event log of every run.",
)

USAGE_DEAD = StreamSpec(
    name="USAGE_DEAD",
    subjects=("usage_dead.>",),
    max_age_s=30 * 24 * 3600,
    description="Usage events the cost ledger could not record, with the reason "
    "(usage_dead.<reason>); kept for an operator to inspect or replay.",
)

AUDIT = StreamSpec(
    name="AUDIT",
    subjects=("audit.>",),
    max_age_s=400 * 24 * 3600,
    duplicate_window_s=3600.0,
    max_msg_size=64 * 1024,
    description="Who did what (audit.<tenant>), kept a year and a month; the chat gateway "
    "stores it in its audit table. Nats-Msg-Id = event id.",
)

CI_EVENTS = StreamSpec(
    name="CI_EVENTS",
    subjects=("ci.events.>",),
    max_age_s=30 * 24 * 3600,
    # A provider redelivers a webhook for days (GitHub's "Redeliver"); the delivery id is
    # the Nats-Msg-Id, and the integrations service also keeps the ids it has seen.
    duplicate_window_s=24 * 3600.0,
    description="CI outcomes (ci.events.<tenant>.<provider>), from provider webhooks, "
    "POST /v1/ci/events and CI publishers; logs in the CI_LOGS object store. "
    "Nats-Msg-Id = event id.",
)

NOTIFY = StreamSpec(
    name="NOTIFY",
    subjects=("notify.>",),
    max_age_s=7 * 24 * 3600,
    duplicate_window_s=24 * 3600.0,
    max_msg_size=256 * 1024,
    description="Notifications to deliver (notify.<channel>.<tenant>), one durable consumer "
    "per channel in the integrations service. Nats-Msg-Id = notification id.",
)

NOTIFY_DEAD = StreamSpec(
    name="NOTIFY_DEAD",
    subjects=("notify_dead.>",),
    max_age_s=30 * 24 * 3600,
    max_msg_size=256 * 1024,
    description="Notifications that failed every attempt, with the last error "
    "(notify_dead.<channel>.<tenant>); `revo notify redrive` sends them again.",
)

ALL_STREAMS: tuple[StreamSpec, ...] = (
    USAGE,
    RUNS,
    RUN_EVENTS,
    USAGE_DEAD,
    AUDIT,
    CI_EVENTS,
    NOTIFY,
    NOTIFY_DEAD,
)
