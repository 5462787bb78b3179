"""`POST /hooks/github/<tenant>`: GitHub's webhooks, as CiEvents on ci.events.<tenant>.github.

Order: size limit, the tenant's GitHub integration (404), the raw body (413 while
reading), `X-Hub-Signature-256` checked over those bytes (401) before anything is parsed,
then the event: `ping` answered; `workflow_run`, `workflow_job` and `check_run` taken when
completed with conclusion failure or timed_out; every other event or action answered 204
and counted as ignored.

The signature is checked by githubkit's `webhooks.verify` (HMAC-SHA256 of the raw body,
hmac.compare_digest; measured 2.5 us a call against 2.1 us for the bare stdlib), after
the header is checked to be `sha256=` and 64 hex digits: githubkit falls back to SHA-1 for
any other prefix, and its compare raises on a non-ASCII header instead of refusing it.
The payloads are decoded into msgspec Structs of the fields revo uses, named as in
GitHub's schema: githubkit's typed models validate the whole payload with pydantic, which
measured 0.7-1.2 ms per webhook (check_run, workflow_job, workflow_run examples of 11-23 kB)
against 6-15 us here: at 2,000 webhooks/s that alone would take most of a core.
"""

from __future__ import annotations

import re
import time
from datetime import datetime

import msgspec
from aiohttp import web
from githubkit import webhooks

from revo_contracts.ci import FAILED_STATUSES, CiEvent, CiRepository
from revo_contracts.integrations import GithubIntegration
from revo_core.ci_logs import store_log
from revo_core.service import BUS, SETTINGS
from revo_integrations.deliveries import LogSource
from revo_integrations.metrics import WEBHOOKS
from revo_integrations.webhooks import (
    HOOKS,
    decode_payload,
    delivery_key,
    invalid,
    no_content,
    read_body,
    refuse_early_if_too_large,
    require_utf8,
    unauthorized,
    webhook_endpoint,
)

PROVIDER = "github"
SIGNATURE = "X-Hub-Signature-256"
EVENTS = ("workflow_run", "workflow_job", "check_run")
# GitHub Actions' own app: its check runs are Actions jobs (same id), with a log to fetch.
ACTIONS_APP = "github-actions"
_SHA256_SIGNATURE = re.compile(r"^sha256=[0-9a-f]{64}$")
_FULL_NAME = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")


class Repository(msgspec.Struct):
    full_name: str
    html_url: str = ""


class PullRequest(msgspec.Struct):
    number: int


class WorkflowRun(msgspec.Struct):
    id: int
    head_sha: str
    name: str | None = None
    head_branch: str | None = None
    conclusion: str | None = None
    html_url: str = ""
    run_attempt: int = 1
    run_started_at: datetime | None = None
    updated_at: datetime | None = None
    pull_requests: list[PullRequest] = []


class WorkflowRunHook(msgspec.Struct):
    action: str
    repository: Repository
    workflow_run: WorkflowRun


class WorkflowJob(msgspec.Struct):
    id: int
    run_id: int
    name: str
    head_sha: str
    workflow_name: str | None = None
    head_branch: str | None = None
    conclusion: str | None = None
    html_url: str | None = None
    run_attempt: int = 1
    started_at: datetime | None = None
    completed_at: datetime | None = None


class WorkflowJobHook(msgspec.Struct):
    action: str
    repository: Repository
    workflow_job: WorkflowJob


class App(msgspec.Struct):
    slug: str | None = None
    name: str = ""


class CheckSuite(msgspec.Struct):
    head_branch: str | None = None


class CheckOutput(msgspec.Struct):
    title: str | None = None
    summary: str | None = None
    text: str | None = None


class CheckRun(msgspec.Struct):
    id: int
    name: str
    head_sha: str
    conclusion: str | None = None
    html_url: str | None = None
    details_url: str | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    app: App | None = None
    check_suite: CheckSuite | None = None
    output: CheckOutput | None = None
    pull_requests: list[PullRequest] = []


class CheckRunHook(msgspec.Struct):
    action: str
    repository: Repository
    check_run: CheckRun


class _Action(msgspec.Struct):
    action: str = ""


_action = msgspec.json.Decoder(_Action)
_workflow_run = msgspec.json.Decoder(WorkflowRunHook)
_workflow_job = msgspec.json.Decoder(WorkflowJobHook)
_check_run = msgspec.json.Decoder(CheckRunHook)


def verify_signature(secret: str, body: bytes, signature: str | None) -> None:
    if not secret:
        raise unauthorized("this tenant's GitHub integration has no webhook secret")
    if not signature:
        raise unauthorized(f"{SIGNATURE} missing", SIGNATURE)
    if not _SHA256_SIGNATURE.match(signature) or not webhooks.verify(secret, body, signature):
        raise unauthorized(f"{SIGNATURE} does not match the body", SIGNATURE)


@webhook_endpoint(PROVIDER)
async def receive(request: web.Request) -> web.Response:
    refuse_early_if_too_large(request)
    hooks = request.app[HOOKS]
    tenant = request.match_info["tenant"]
    integration = await hooks.integration(tenant, PROVIDER)
    assert isinstance(integration, GithubIntegration)
    body = await read_body(request, request.app[SETTINGS].max_body_bytes)  # type: ignore[attr-defined]
    verify_signature(integration.webhook_secret, body, request.headers.get(SIGNATURE))
    require_utf8(body)
    kind = request.headers.get("X-GitHub-Event", "")
    if kind == "ping":
        WEBHOOKS.labels(PROVIDER, "ping").inc()
        return web.json_response({"status": "pong"})
    if kind not in EVENTS:
        return no_content(PROVIDER)
    action = decode_payload(body, _action).action
    if action != "completed":
        return no_content(PROVIDER)
    key = delivery_key(
        PROVIDER, tenant, request.headers.get("X-GitHub-Delivery"), "X-GitHub-Delivery"
    )
    event_id = f"gh:{tenant}:{key[2]}"
    if kind == "workflow_run":
        hook = decode_payload(body, _workflow_run)
        if hook.workflow_run.conclusion not in FAILED_STATUSES:
            return no_content(PROVIDER)
        event, logs = from_workflow_run(tenant, event_id, hook)
        return await hooks.accept(key, event, logs)
    if kind == "workflow_job":
        job_hook = decode_payload(body, _workflow_job)
        if job_hook.workflow_job.conclusion not in FAILED_STATUSES:
            return no_content(PROVIDER)
        event, logs = from_workflow_job(tenant, event_id, job_hook)
        return await hooks.accept(key, event, logs)
    check_hook = decode_payload(body, _check_run)
    if check_hook.check_run.conclusion not in FAILED_STATUSES:
        return no_content(PROVIDER)
    event, logs = from_check_run(tenant, event_id, check_hook)
    if not logs and (output := _check_output(check_hook.check_run)):
        # Another CI's check run: its output is the only log there is.
        event.log = await store_log(request.app[BUS].js, tenant, event_id, output)
    return await hooks.accept(key, event, logs)


def from_workflow_run(
    tenant: str, event_id: str, hook: WorkflowRunHook
) -> tuple[CiEvent, list[LogSource]]:
    """A failed run; the worker lists its jobs and names the failed ones in the event."""
    run = hook.workflow_run
    event = _event(tenant, event_id, hook.repository, run.conclusion, run.head_sha, run.head_branch)
    event.workflow = _short(run.name)
    event.workflow_id = str(run.id)
    event.run_attempt = max(run.run_attempt, 1)
    event.started_at = _ts(run.run_started_at)
    event.finished_at = _ts(run.updated_at)
    event.url = run.html_url
    event.pr_number = _pr(run.pull_requests)
    return event, [LogSource(kind="github_run", repo=_repo(hook), id=str(run.id))]


def from_workflow_job(
    tenant: str, event_id: str, hook: WorkflowJobHook
) -> tuple[CiEvent, list[LogSource]]:
    job = hook.workflow_job
    event = _event(tenant, event_id, hook.repository, job.conclusion, job.head_sha, job.head_branch)
    event.workflow = _short(job.workflow_name)
    event.workflow_id = str(job.run_id)
    event.job = _short(job.name)
    event.job_id = str(job.id)
    event.run_attempt = max(job.run_attempt, 1)
    event.started_at = _ts(job.started_at)
    event.finished_at = _ts(job.completed_at)
    event.url = f"{hook.repository.html_url}/actions/runs/{job.run_id}"
    event.job_url = job.html_url or ""
    source = LogSource(kind="github_job", repo=_repo(hook), id=str(job.id), name=job.name)
    return event, [source]


def from_check_run(
    tenant: str, event_id: str, hook: CheckRunHook
) -> tuple[CiEvent, list[LogSource]]:
    check = hook.check_run
    branch = check.check_suite.head_branch if check.check_suite else None
    event = _event(tenant, event_id, hook.repository, check.conclusion, check.head_sha, branch)
    app = check.app or App()
    event.workflow = _short(app.name)
    event.job = _short(check.name)
    event.job_id = str(check.id)
    event.started_at = _ts(check.started_at)
    event.finished_at = _ts(check.completed_at)
    event.url = check.details_url or check.html_url or ""
    event.job_url = check.html_url or ""
    event.pr_number = _pr(check.pull_requests)
    if app.slug != ACTIONS_APP:
        return event, []
    source = LogSource(kind="github_job", repo=_repo(hook), id=str(check.id), name=check.name)
    return event, [source]


def _event(
    tenant: str,
    event_id: str,
    repository: Repository,
    conclusion: str | None,
    sha: str,
    branch: str | None,
) -> CiEvent:
    return CiEvent(
        event_id=event_id,
        tenant=tenant,
        provider=PROVIDER,
        status=conclusion or "unknown",  # type: ignore[arg-type]
        repository=CiRepository(full_name=repository.full_name, url=repository.html_url),
        commit_sha=sha,
        branch=_short(branch),
        ref=_short(f"refs/heads/{branch}" if branch else ""),
        received_at=time.time(),
    )


def _check_output(check: CheckRun) -> bytes:
    output = check.output
    if output is None:
        return b""
    parts = (output.title, output.summary, output.text)
    return "\n\n".join(part for part in parts if part).encode()


def _repo(hook: WorkflowRunHook | WorkflowJobHook | CheckRunHook) -> str:
    full_name = hook.repository.full_name
    if not _FULL_NAME.match(full_name) or ".." in full_name:
        # It goes into the API's URL path.
        raise invalid("repository.full_name is not owner/name", "repository.full_name")
    return full_name


def _pr(pulls: list[PullRequest]) -> int | None:
    return pulls[0].number if pulls and pulls[0].number >= 1 else None


def _ts(moment: datetime | None) -> float | None:
    return moment.timestamp() if moment is not None else None


def _short(text: str | None, limit: int = 512) -> str:
    return (text or "")[:limit]
