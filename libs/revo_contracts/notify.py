"""Notifications out (DESIGN.md §2 `notify.<channel>.<tenant>`, stream NOTIFY).

Agents and services publish a `Notification`; only the integrations service talks to
GitHub, Slack, Jira or a webhook receiver. `notification_id` is the idempotency key: the
stream's Nats-Msg-Id, the generic webhook's `webhook-id`, and what lets a retried delivery
update the post it already made instead of making another. A notification that failed
every attempt goes to `notify_dead.<channel>.<tenant>` (stream NOTIFY_DEAD) with its last
error, until `revo notify redrive` sends it again.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from revo_contracts.ci import CiRepository
from revo_contracts.inference import TenantId

Channel = Literal["github", "slack", "jira", "webhook"]
CHANNELS: tuple[str, ...] = ("github", "slack", "jira", "webhook")
NotificationId = Annotated[str, Meta(pattern=r"^[A-Za-z0-9_.:-]{1,128}$")]


class Link(msgspec.Struct, kw_only=True):
    title: Annotated[str, Meta(min_length=1, max_length=200)]
    url: Annotated[str, Meta(min_length=1, max_length=2048)]


class Annotation(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A line a notification points at: a GitHub check-run annotation, a line in Jira."""

    path: Annotated[str, Meta(min_length=1, max_length=1024)]
    line: Annotated[int, Meta(ge=1)]
    end_line: Annotated[int, Meta(ge=1)] | None = None
    level: Literal["notice", "warning", "failure"] = "failure"
    title: Annotated[str, Meta(max_length=255)] = ""
    message: Annotated[str, Meta(min_length=1, max_length=64 * 1024)]


class Notification(msgspec.Struct, kw_only=True, omit_defaults=True):
    notification_id: NotificationId
    tenant: TenantId
    channel: Channel
    title: Annotated[str, Meta(min_length=1, max_length=256)]
    # Plain text with light markdown (links, `code`); each channel renders it its way.
    summary: Annotated[str, Meta(max_length=32 * 1024)] = ""
    severity: Literal["info", "warning", "failure"] = "failure"
    # Groups notifications about the same failure: a re-run updates the same GitHub
    # comment, and Jira comments on the open issue instead of opening another.
    signature: Annotated[str, Meta(max_length=512)] = ""
    repository: CiRepository | None = None
    commit_sha: Annotated[str, Meta(max_length=64)] = ""
    pr_number: Annotated[int, Meta(ge=1)] | None = None
    failing_test: Annotated[str, Meta(max_length=512)] = ""
    root_cause: Annotated[str, Meta(max_length=8 * 1024)] = ""
    links: list[Link] = []
    annotations: Annotated[list[Annotation], Meta(max_length=50)] = []
    run_id: Annotated[str, Meta(max_length=64)] | None = None
    created_at: float = 0.0


class DeadNotification(msgspec.Struct, kw_only=True):
    """A notification that failed every attempt, with why (stream NOTIFY_DEAD)."""

    notification: Notification
    attempts: int
    last_error: Annotated[str, Meta(max_length=2048)]
    dead_at: float


class NotifyDeadListRequest(msgspec.Struct, kw_only=True, omit_defaults=True):
    """`integrations.notify.dead.list` (operators; `revo notify dead`)."""

    tenant: TenantId | None = None
    channel: Channel | None = None
    limit: Annotated[int, Meta(ge=1, le=1000)] = 100


class NotifyDeadLetter(msgspec.Struct, kw_only=True):
    # The dead letter's sequence in stream NOTIFY_DEAD.
    seq: int
    dead: DeadNotification


class NotifyDeadListResponse(msgspec.Struct, kw_only=True):
    """Dead letters, oldest first."""

    dead: list[NotifyDeadLetter]


class NotifyRedriveRequest(msgspec.Struct, kw_only=True, omit_defaults=True):
    """`integrations.notify.redrive`: send dead letters again (to notify.<channel>.<tenant>)
    and delete them from NOTIFY_DEAD. One notification by id, or `all` (of one tenant)."""

    notification_id: NotificationId | None = None
    all: bool = False
    tenant: TenantId | None = None
