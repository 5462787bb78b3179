"""`POST /hooks/gitlab/<tenant>`: GitLab's Pipeline and Job hooks, as CiEvents on
ci.events.<tenant>.gitlab.

GitLab does not sign its webhooks: it sends the secret token set on the webhook as
`X-Gitlab-Token`, compared here in constant time with the integration's webhook_token.
A failed pipeline or job is taken (its failed jobs' traces fetched through the API after
the answer); everything else is answered 204 and counted as ignored.
Redeliveries are recognised by `Idempotency-Key` (GitLab 17.4+, the same on every retry),
else `X-Gitlab-Event-UUID`, else a hash of the body.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from datetime import datetime

import msgspec
from aiohttp import web

from revo_contracts.ci import CiEvent, CiRepository
from revo_contracts.integrations import GitlabIntegration
from revo_core.service import SETTINGS
from revo_integrations.deliveries import LogSource
from revo_integrations.webhooks import (
    DELIVERY_ID,
    HOOKS,
    decode_payload,
    delivery_key,
    no_content,
    read_body,
    refuse_early_if_too_large,
    require_utf8,
    unauthorized,
    webhook_endpoint,
)

PROVIDER = "gitlab"
TOKEN_HEADER = "X-Gitlab-Token"
PIPELINE_HOOK = "Pipeline Hook"
JOB_HOOK = "Job Hook"
_DELIVERY_HEADERS = ("Idempotency-Key", "X-Gitlab-Event-UUID")


class Project(msgspec.Struct):
    id: int
    path_with_namespace: str = ""
    web_url: str = ""


class Build(msgspec.Struct):
    id: int
    status: str
    name: str = ""
    allow_failure: bool = False
    failure_reason: str | None = None


class PipelineAttributes(msgspec.Struct):
    id: int
    sha: str
    status: str
    ref: str | None = None
    tag: bool = False
    name: str | None = None
    url: str | None = None
    created_at: str | None = None
    finished_at: str | None = None


class MergeRequest(msgspec.Struct):
    iid: int


class PipelineHook(msgspec.Struct):
    object_attributes: PipelineAttributes
    project: Project
    merge_request: MergeRequest | None = None
    builds: list[Build] = []


class Repository(msgspec.Struct):
    name: str = ""
    homepage: str = ""


class JobHook(msgspec.Struct):
    build_id: int
    build_name: str
    build_status: str
    project_id: int
    pipeline_id: int
    sha: str
    ref: str = ""
    tag: bool = False
    build_stage: str = ""
    build_failure_reason: str | None = None
    build_started_at: str | None = None
    build_finished_at: str | None = None
    repository: Repository | None = None
    # Sent by recent GitLab versions; older ones name the project only in `repository`.
    project: Project | None = None


_pipeline = msgspec.json.Decoder(PipelineHook)
_job = msgspec.json.Decoder(JobHook)


def verify_token(expected: str, given: str | None) -> None:
    if not expected:
        raise unauthorized("this tenant's GitLab integration has no webhook token")
    if not given:
        raise unauthorized(f"{TOKEN_HEADER} missing", TOKEN_HEADER)
    if not hmac.compare_digest(expected.encode(), given.encode("utf-8", errors="replace")):
        raise unauthorized(f"{TOKEN_HEADER} is not this tenant's webhook token", TOKEN_HEADER)


@webhook_endpoint(PROVIDER)
async def receive(request: web.Request) -> web.Response:
    refuse_early_if_too_large(request)
    hooks = request.app[HOOKS]
    tenant = request.match_info["tenant"]
    integration = await hooks.integration(tenant, PROVIDER)
    assert isinstance(integration, GitlabIntegration)
    body = await read_body(request, request.app[SETTINGS].max_body_bytes)  # type: ignore[attr-defined]
    verify_token(integration.webhook_token, request.headers.get(TOKEN_HEADER))
    require_utf8(body)
    kind = request.headers.get("X-Gitlab-Event", "")
    if kind not in (PIPELINE_HOOK, JOB_HOOK):
        return no_content(PROVIDER)
    delivery, header = _delivery_id(request, body)
    key = delivery_key(PROVIDER, tenant, delivery, header)
    event_id = f"gl:{tenant}:{delivery}"
    if kind == PIPELINE_HOOK:
        pipeline = decode_payload(body, _pipeline)
        if pipeline.object_attributes.status != "failed":
            return no_content(PROVIDER)
        event, logs = from_pipeline(tenant, event_id, pipeline)
        return await hooks.accept(key, event, logs)
    job = decode_payload(body, _job)
    if job.build_status != "failed":
        return no_content(PROVIDER)
    event, logs = from_job(tenant, event_id, job)
    return await hooks.accept(key, event, logs)


def from_pipeline(
    tenant: str, event_id: str, hook: PipelineHook
) -> tuple[CiEvent, list[LogSource]]:
    attrs, project = hook.object_attributes, hook.project
    failed = [b for b in hook.builds if b.status == "failed" and not b.allow_failure]
    timed_out = any(build.failure_reason == "job_execution_timeout" for build in failed)
    event = _event(tenant, event_id, project, attrs.sha, attrs.ref, attrs.tag, timed_out)
    event.workflow = _short(attrs.name or "pipeline")
    event.workflow_id = str(attrs.id)
    event.job = _short(", ".join(build.name for build in failed))
    event.job_id = _short(",".join(str(build.id) for build in failed))
    event.started_at = _ts(attrs.created_at)
    event.finished_at = _ts(attrs.finished_at)
    event.url = attrs.url or f"{project.web_url}/-/pipelines/{attrs.id}"
    if len(failed) == 1:
        event.job_url = f"{project.web_url}/-/jobs/{failed[0].id}"
    if hook.merge_request is not None and hook.merge_request.iid >= 1:
        event.pr_number = hook.merge_request.iid
    logs = [
        LogSource(kind="gitlab_job", repo=str(project.id), id=str(build.id), name=build.name)
        for build in failed
    ]
    return event, logs


def from_job(tenant: str, event_id: str, hook: JobHook) -> tuple[CiEvent, list[LogSource]]:
    project = hook.project or _project_of(hook)
    timed_out = hook.build_failure_reason == "job_execution_timeout"
    event = _event(tenant, event_id, project, hook.sha, hook.ref, hook.tag, timed_out)
    event.workflow = _short(hook.build_stage)
    event.workflow_id = str(hook.pipeline_id)
    event.job = _short(hook.build_name)
    event.job_id = str(hook.build_id)
    event.started_at = _ts(hook.build_started_at)
    event.finished_at = _ts(hook.build_finished_at)
    if project.web_url:
        event.url = f"{project.web_url}/-/pipelines/{hook.pipeline_id}"
        event.job_url = f"{project.web_url}/-/jobs/{hook.build_id}"
    source = LogSource(
        kind="gitlab_job", repo=str(hook.project_id), id=str(hook.build_id), name=hook.build_name
    )
    return event, [source]


def _project_of(hook: JobHook) -> Project:
    homepage = hook.repository.homepage if hook.repository else ""
    path = homepage.split("://", 1)[-1].partition("/")[2]
    return Project(id=hook.project_id, path_with_namespace=path, web_url=homepage)


def _event(
    tenant: str,
    event_id: str,
    project: Project,
    sha: str,
    ref: str | None,
    tag: bool,
    timed_out: bool,
) -> CiEvent:
    ref = ref or ""
    return CiEvent(
        event_id=event_id,
        tenant=tenant,
        provider=PROVIDER,
        status="timed_out" if timed_out else "failure",
        repository=CiRepository(full_name=project.path_with_namespace, url=project.web_url),
        commit_sha=sha,
        branch="" if tag else _short(ref),
        ref=_short(f"refs/tags/{ref}" if tag else f"refs/heads/{ref}" if ref else ""),
        received_at=time.time(),
    )


def _delivery_id(request: web.Request, body: bytes) -> tuple[str, str]:
    for header in _DELIVERY_HEADERS:
        value = request.headers.get(header)
        if value and DELIVERY_ID.match(value):
            return value, header
    # No id from GitLab: the same body is the same delivery.
    return "body-" + hashlib.sha256(body).hexdigest()[:32], "body"


def _ts(moment: str | None) -> float | None:
    """GitLab writes `2021-02-23 02:41:37 UTC` (and ISO 8601 in places)."""
    if not moment:
        return None
    try:
        return datetime.fromisoformat(moment.replace(" UTC", "+00:00")).timestamp()
    except ValueError:
        return None


def _short(text: str | None, limit: int = 512) -> str:
    return (text or "")[:limit]
