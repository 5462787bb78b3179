"""CI events (DESIGN.md §2 `ci.events.<tenant>.<provider>`, stream CI_EVENTS).

A CI pipeline's outcome, as every provider reports it: the integrations service turns
GitHub and GitLab webhooks into a `CiEvent`; the chat gateway's `POST /v1/ci/events` (and
`revo publish`) takes one from any other CI; a CI publisher's own NATS identity may also
publish one to `ci.events.<tenant>.>` with `nats pub`. The log is inline when small, or a
reference into the JetStream object store `CI_LOGS` (gzip, chunked; revo_core.ci_logs).
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from revo_contracts.inference import TenantId

Provider = Annotated[str, Meta(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")]
CiStatus = Literal[
    "success",
    "failure",
    "timed_out",
    "cancelled",
    "skipped",
    "neutral",
    "action_required",
    "running",
    "queued",
    "unknown",
]
# The statuses that start an investigation (the tenant's CI policy decides the rest).
FAILED_STATUSES: frozenset[str] = frozenset({"failure", "timed_out"})
# A log carried inside the event at most; larger logs go to the CI_LOGS object store.
INLINE_LOG_MAX_BYTES = 64 * 1024
CI_LOGS_BUCKET = "CI_LOGS"
EventId = Annotated[str, Meta(pattern=r"^[A-Za-z0-9_.:-]{1,128}$")]
ShortText = Annotated[str, Meta(max_length=512)]
Url = Annotated[str, Meta(max_length=2048)]


class CiRepository(msgspec.Struct, kw_only=True, omit_defaults=True):
    # "owner/name" (GitHub), "group/project" (GitLab), or what the CI calls it.
    full_name: ShortText = ""
    url: Url = ""


class CiLogRef(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Where a log is kept: an object of the CI_LOGS bucket, gzip-compressed."""

    bucket: str = CI_LOGS_BUCKET
    name: Annotated[str, Meta(min_length=1, max_length=512)]
    # The log's size before compression, and after.
    size: Annotated[int, Meta(ge=0)]
    stored_size: Annotated[int, Meta(ge=0)] = 0
    sha256: Annotated[str, Meta(max_length=64)] = ""


class CiLog(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The job's log: `text` inline (at most INLINE_LOG_MAX_BYTES), or `ref` to CI_LOGS.
    Bytes that are not UTF-8 are replaced (U+FFFD), never refused."""

    text: Annotated[str, Meta(max_length=INLINE_LOG_MAX_BYTES)] | None = None
    ref: CiLogRef | None = None
    # The log was cut at the service's size limit (its head and tail kept).
    truncated: bool = False


class CiEvent(msgspec.Struct, kw_only=True, omit_defaults=True):
    # Unique per delivery of the same outcome; the stream's Nats-Msg-Id, so a redelivered
    # webhook (same delivery id) is stored once.
    event_id: EventId
    tenant: TenantId
    provider: Provider
    status: CiStatus
    repository: CiRepository = msgspec.field(default_factory=CiRepository)
    commit_sha: Annotated[str, Meta(max_length=64)] = ""
    ref: ShortText = ""
    branch: ShortText = ""
    pr_number: Annotated[int, Meta(ge=1)] | None = None
    workflow: ShortText = ""
    workflow_id: ShortText = ""
    job: ShortText = ""
    job_id: ShortText = ""
    run_attempt: Annotated[int, Meta(ge=1)] = 1
    started_at: float | None = None
    finished_at: float | None = None
    # The pipeline's page and the job's page at the provider.
    url: Url = ""
    job_url: Url = ""
    log: CiLog | None = None
    received_at: float = 0.0

    def failure_signature(self) -> str:
        """The same failure, whoever reports it again: repository, workflow, job, commit."""
        parts = (self.repository.full_name or self.repository.url, self.workflow, self.job)
        return "|".join((*parts, self.commit_sha))
