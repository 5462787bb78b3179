"""GitHub: a check run with annotations at path:line, and a PR (or commit) comment that a
re-run of the same failure updates instead of adding another.

Plain aiohttp on the REST API (base URL = the integration's `api_url`) rather than
githubkit's client, measured (bench/integrations_github_client.py, 2-core VM, 2026-12-02:
a PR comment to a local server, githubkit 0.16.1 with auto_retry off): 2.5-3.2 ms of CPU
per call against aiohttp's 0.24-0.32 ms, ~10x (githubkit validates each request body with
pydantic and runs its own httpx stack beside the service's aiohttp pool), and +40 MB RSS.
Each token is capped at 1.3 calls/s, but one replica serves every tenant; the seven routes
used here are small, and the tests' GitHub server checks their shapes.

Never twice: the check run carries `external_id` = notification id, and the comment a
hidden marker of the failure signature; a retry whose earlier attempt may have reached
GitHub unheard (a crash, a timeout) looks for them before posting, and a re-run of the
same failure finds its comment through `integrations.notify_threads` (or the marker).
"""

from __future__ import annotations

import hashlib

from revo_contracts.integrations import GithubIntegration, Integration
from revo_contracts.notify import Notification
from revo_integrations.channels import DeliveryContext, DeliveryFailed
from revo_integrations.channels.http import Answer, base, call

CHECK_NAME = "revo"
API_VERSION = "2022-11-28"
_CONCLUSION = {"failure": "failure", "warning": "neutral", "info": "neutral"}


class GithubChannel:
    name = "github"

    def rate_key(self, note: Notification, integration: Integration) -> str:
        # GitHub's secondary limits are per token.
        assert isinstance(integration, GithubIntegration)
        return f"github:{hashlib.sha256(integration.token.encode()).hexdigest()[:16]}"

    async def deliver(
        self, ctx: DeliveryContext, note: Notification, integration: Integration
    ) -> None:
        assert isinstance(integration, GithubIntegration)
        repo = note.repository.full_name if note.repository else ""
        if repo.count("/") != 1:
            raise DeliveryFailed(
                "a GitHub notification needs repository.full_name 'owner/repo'", permanent=True
            )
        api = _Api(ctx, integration, repo)
        wants_check = integration.check_runs and bool(note.commit_sha)
        wants_comment = integration.comments and bool(note.pr_number or note.commit_sha)
        if not (wants_check or wants_comment):
            raise DeliveryFailed(
                "nothing to post on GitHub: check runs need commit_sha, comments need "
                "pr_number or commit_sha (or both are off in the integration)",
                permanent=True,
            )
        if wants_check and "check_run_id" not in ctx.posted:
            await ctx.keep(check_run_id=await _check_run(api, ctx, note))
        if wants_comment and "comment_id" not in ctx.posted:
            await ctx.keep(comment_id=await _comment(api, ctx, note))

    async def test(self, ctx: DeliveryContext, integration: Integration) -> None:
        # A test comment would land in someone's repository: an authenticated call proves
        # the token and the API URL instead (401 for a bad token).
        assert isinstance(integration, GithubIntegration)
        await call(
            ctx,
            "GET",
            f"{base(integration.api_url)}/rate_limit",
            "/rate_limit",
            headers=_headers(integration),
        )


class _Api:
    def __init__(self, ctx: DeliveryContext, integration: GithubIntegration, repo: str) -> None:
        self.ctx = ctx
        self.root = f"{base(integration.api_url)}/repos/{repo}"
        self.headers = _headers(integration)

    async def __call__(self, method: str, path: str, route: str, body: object = None) -> Answer:
        return await call(
            self.ctx,
            method,
            self.root + path,
            f"/repos/{{owner}}/{{repo}}{route}",
            json=body,
            headers=self.headers,
        )


def _headers(integration: GithubIntegration) -> dict[str, str]:
    headers = {
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": API_VERSION,
        "User-Agent": "revo-integrations",
    }
    if integration.token:
        headers["Authorization"] = f"Bearer {integration.token}"
    return headers


async def _check_run(api: _Api, ctx: DeliveryContext, note: Notification) -> int:
    if ctx.maybe_posted_before:
        found = await _find_check_run(api, note)
        if found is not None:
            return found
    answer = await api("POST", "/check-runs", "/check-runs", check_run(note))
    return int(answer.field("id"))


async def _find_check_run(api: _Api, note: Notification) -> int | None:
    answer = await api(
        "GET",
        f"/commits/{note.commit_sha}/check-runs?check_name={CHECK_NAME}",
        "/commits/{ref}/check-runs",
    )
    for run in answer.field("check_runs") or []:
        if run.get("external_id") == note.notification_id:
            return int(run["id"])
    return None


def check_run(note: Notification) -> dict:
    """The check run: completed, with the root cause as its output and the lines it points
    at as annotations (GitHub takes up to 50 per request: the contract's cap)."""
    return {
        "name": CHECK_NAME,
        "head_sha": note.commit_sha,
        "external_id": note.notification_id,
        "status": "completed",
        "conclusion": _CONCLUSION[note.severity],
        "output": {
            "title": note.title,
            "summary": _cut(note.root_cause or note.summary or note.title, 65535),
            "text": _cut(note.summary, 65535) if note.root_cause and note.summary else "",
            "annotations": [
                {
                    "path": a.path,
                    "start_line": a.line,
                    "end_line": a.end_line or a.line,
                    "annotation_level": a.level,
                    "title": a.title,
                    "message": a.message,
                }
                for a in note.annotations
            ],
        },
    }


async def _comment(api: _Api, ctx: DeliveryContext, note: Notification) -> int:
    """Update the comment of this failure signature where there is one, else post one."""
    on_pr = note.pr_number is not None
    where = f"#{note.pr_number}" if on_pr else f"@{note.commit_sha}"
    thread = note.signature or note.notification_id
    marker = comment_marker(thread)
    body = comment_body(note, marker)
    existing = None
    if ctx.store is not None:
        existing = await ctx.store.thread(note.tenant, "github", api.root + where, thread)
    if existing is None and ctx.maybe_posted_before:
        existing = await _find_comment(api, note, marker)
    if existing is not None:
        updated = await _update_comment(api, on_pr, int(existing), body)
        if updated is not None:
            return updated
    if on_pr:
        answer = await api(
            "POST",
            f"/issues/{note.pr_number}/comments",
            "/issues/{number}/comments",
            {"body": body},
        )
    else:
        answer = await api(
            "POST",
            f"/commits/{note.commit_sha}/comments",
            "/commits/{commit_sha}/comments",
            {"body": body},
        )
    comment_id = int(answer.field("id"))
    if ctx.store is not None:
        await ctx.store.keep_thread(
            note.tenant, "github", api.root + where, thread, str(comment_id)
        )
    return comment_id


async def _update_comment(api: _Api, on_pr: bool, comment_id: int, body: str) -> int | None:
    """PATCH the comment; None when it is gone (deleted by someone): post a new one."""
    path = f"/issues/comments/{comment_id}" if on_pr else f"/comments/{comment_id}"
    route = "/issues/comments/{comment_id}" if on_pr else "/comments/{comment_id}"
    try:
        await api("PATCH", path, route, {"body": body})
    except DeliveryFailed as failed:
        if failed.status == 404:
            return None
        raise
    return comment_id


async def _find_comment(api: _Api, note: Notification, marker: str) -> int | None:
    if note.pr_number is not None:
        answer = await api(
            "GET", f"/issues/{note.pr_number}/comments?per_page=100", "/issues/{number}/comments"
        )
    else:
        answer = await api(
            "GET",
            f"/commits/{note.commit_sha}/comments?per_page=100",
            "/commits/{commit_sha}/comments",
        )
    for comment in answer.body or []:
        if marker in (comment.get("body") or ""):
            return int(comment["id"])
    return None


def comment_marker(thread: str) -> str:
    digest = hashlib.sha256(thread.encode()).hexdigest()[:32]
    return f"<!-- revo:failure:{digest} -->"


def comment_body(note: Notification, marker: str) -> str:
    lines = [f"### {note.title}", ""]
    if note.failing_test:
        lines += [f"**Failing test:** `{note.failing_test}`", ""]
    if note.root_cause:
        lines += [f"**Root cause:** {note.root_cause}", ""]
    for a in note.annotations[:10]:
        lines.append(f"- `{a.path}:{a.line}` {a.title or a.message[:200]}")
    if note.annotations:
        lines.append("")
    if note.summary:
        lines += [note.summary, ""]
    links = [f"[{link.title}]({link.url})" for link in note.links]
    if links:
        lines += [" · ".join(links), ""]
    lines.append(marker)
    return _cut("\n".join(lines), 65000)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
