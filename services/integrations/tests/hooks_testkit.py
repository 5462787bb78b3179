"""What the webhook tests share: fake GitHub and GitLab APIs (real aiohttp servers that check
the token and the path), signed deliveries, payloads shaped as the providers send them, and
reading CI_EVENTS back."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
import uuid
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from revo_contracts import subjects
from revo_contracts.ci import CiEvent
from revo_contracts.streams import CI_EVENTS
from revo_core.codec import decode
from revo_core.embedded.ports import free_port

GITHUB_TOKEN = "ghp_token-the-fake-github-expects"
GITLAB_TOKEN = "glpat-token-the-fake-gitlab-expects"
WEBHOOK_SECRET = "whsecret-of-the-tenant"


@dataclass
class FakeGithub:
    """GitHub's REST API as far as revo reads it. The log route answers 302 to a second
    route (the signed storage URL), which must be reached without the token."""

    runs: dict[str, list[dict]] = field(default_factory=dict)
    logs: dict[str, bytes] = field(default_factory=dict)
    # A job id here: its download waits until the event is set (a slow GitHub).
    held: dict[str, asyncio.Event] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    url: str = ""

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/repos/{owner}/{repo}/actions/runs/{run_id}/jobs", self._jobs)
        app.router.add_get("/repos/{owner}/{repo}/actions/jobs/{job_id}/logs", self._log)
        app.router.add_get("/blob/{job_id}", self._download)
        return app

    def _authorized(self, request: web.Request) -> bool:
        self.calls.append(request.path)
        if request.headers.get("Authorization") != f"Bearer {GITHUB_TOKEN}":
            self.refused.append(request.path)
            return False
        return request.headers.get("X-GitHub-Api-Version") == "2022-11-28"

    async def _jobs(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"message": "Bad credentials"}, status=401)
        jobs = self.runs.get(request.match_info["run_id"])
        if jobs is None:
            return web.json_response({"message": "Not Found"}, status=404)
        return web.json_response({"total_count": len(jobs), "jobs": jobs})

    async def _log(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"message": "Bad credentials"}, status=401)
        job_id = request.match_info["job_id"]
        if job_id not in self.logs:
            return web.json_response({"message": "Not Found"}, status=404)
        raise web.HTTPFound(f"{self.url}/blob/{job_id}?sig=signed-{uuid.uuid4().hex}")

    async def _download(self, request: web.Request) -> web.Response:
        self.calls.append(request.path)
        if "Authorization" in request.headers or "sig" not in request.query:
            self.refused.append(request.path)
            return web.Response(status=403, text="the storage takes no token")
        job_id = request.match_info["job_id"]
        gate = self.held.get(job_id)
        if gate is not None:
            await gate.wait()
        return web.Response(body=self.logs[job_id], content_type="text/plain")


@dataclass
class FakeGitlab:
    traces: dict[str, bytes] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    url: str = ""

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/api/v4/projects/{project}/jobs/{job_id}/trace", self._trace)
        return app

    async def _trace(self, request: web.Request) -> web.Response:
        self.calls.append(request.path)
        if request.headers.get("PRIVATE-TOKEN") != GITLAB_TOKEN:
            return web.json_response({"message": "401 Unauthorized"}, status=401)
        trace = self.traces.get(request.match_info["job_id"])
        if trace is None:
            return web.json_response({"message": "404 Not found"}, status=404)
        return web.Response(body=trace, content_type="text/plain")


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}"


def sign(body: bytes, secret: str = WEBHOOK_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


async def post(service, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict | None]:
    url = f"http://127.0.0.1:{service.http_port}{path}"
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=body, headers=headers) as response,
    ):
        text = await response.read()
        return response.status, json.loads(text) if text else None


async def github_hook(
    service,
    tenant: str,
    event: str,
    payload: dict,
    delivery: str | None = None,
    secret: str = WEBHOOK_SECRET,
    extra: dict[str, str] | None = None,
) -> tuple[int, dict | None]:
    body = json.dumps(payload).encode()
    headers = {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-Hub-Signature-256": sign(body, secret),
        "Content-Type": "application/json",
        **(extra or {}),
    }
    return await post(service, f"/hooks/github/{tenant}", body, headers)


def repository(full_name: str = "acme/shop") -> dict:
    return {
        "id": 1296269,
        "full_name": full_name,
        "name": full_name.split("/")[1],
        "html_url": f"https://github.com/{full_name}",
        "private": False,
        "owner": {"login": full_name.split("/")[0], "id": 1, "type": "Organization"},
    }


def workflow_run(run_id: int, conclusion: str = "failure", action: str = "completed") -> dict:
    return {
        "action": action,
        "repository": repository(),
        "workflow": {"id": 161335, "name": "CI", "path": ".github/workflows/ci.yml"},
        "workflow_run": {
            "id": run_id,
            "name": "CI",
            "head_branch": "feature/cart",
            "head_sha": "d6fde92930d4715a2b49857d24b940956b26d2d3",
            "run_attempt": 1,
            "status": "completed",
            "conclusion": conclusion,
            "event": "pull_request",
            "html_url": f"https://github.com/acme/shop/actions/runs/{run_id}",
            "run_started_at": "2026-11-30T10:00:00Z",
            "updated_at": "2026-11-30T10:04:12Z",
            "pull_requests": [{"id": 9, "number": 42, "url": "https://api.github.com/x"}],
        },
        "sender": {"login": "octocat", "id": 2},
    }


def workflow_job(job_id: int, run_id: int, conclusion: str = "failure") -> dict:
    return {
        "action": "completed",
        "repository": repository(),
        "workflow_job": {
            "id": job_id,
            "run_id": run_id,
            "run_attempt": 2,
            "name": "test (3.11)",
            "workflow_name": "CI",
            "head_sha": "d6fde92930d4715a2b49857d24b940956b26d2d3",
            "head_branch": "main",
            "status": "completed",
            "conclusion": conclusion,
            "html_url": f"https://github.com/acme/shop/actions/runs/{run_id}/job/{job_id}",
            "started_at": "2026-11-30T10:00:05Z",
            "completed_at": "2026-11-30T10:03:55Z",
            "steps": [{"name": "pytest", "status": "completed", "conclusion": conclusion}],
        },
    }


def check_run(check_id: int, app_slug: str = "circleci", conclusion: str = "failure") -> dict:
    return {
        "action": "completed",
        "repository": repository(),
        "check_run": {
            "id": check_id,
            "name": "build",
            "head_sha": "0123456789abcdef0123456789abcdef01234567",
            "status": "completed",
            "conclusion": conclusion,
            "html_url": f"https://github.com/acme/shop/runs/{check_id}",
            "details_url": "https://ci.example/build/77",
            "started_at": "2026-11-30T09:00:00Z",
            "completed_at": "2026-11-30T09:01:00Z",
            "output": {"title": "2 tests failed", "summary": "test_cart failed", "text": None},
            "check_suite": {"id": 5, "head_branch": "main"},
            "app": {"id": 3, "slug": app_slug, "name": app_slug.title()},
            "pull_requests": [],
        },
    }


def job(job_id: int, name: str, conclusion: str) -> dict:
    return {
        "id": job_id,
        "name": name,
        "status": "completed",
        "conclusion": conclusion,
        "html_url": f"https://github.com/acme/shop/actions/runs/1/job/{job_id}",
    }


def gitlab_pipeline(pipeline_id: int, builds: list[dict], status: str = "failed") -> dict:
    return {
        "object_kind": "pipeline",
        "object_attributes": {
            "id": pipeline_id,
            "iid": 12,
            "ref": "main",
            "tag": False,
            "sha": "bcbb5ec396a2c0f828686f14fac9b80b780504f2",
            "status": status,
            "stages": ["build", "test"],
            "created_at": "2026-11-30 10:00:00 UTC",
            "finished_at": "2026-11-30 10:05:00 UTC",
            "url": f"https://gitlab.example/acme/shop/-/pipelines/{pipeline_id}",
        },
        "merge_request": None,
        "project": {
            "id": 77,
            "name": "shop",
            "path_with_namespace": "acme/shop",
            "web_url": "https://gitlab.example/acme/shop",
        },
        "builds": builds,
    }


def gitlab_build(build_id: int, name: str, status: str, reason: str | None = None) -> dict:
    return {
        "id": build_id,
        "stage": "test",
        "name": name,
        "status": status,
        "allow_failure": False,
        "failure_reason": reason,
        "created_at": "2026-11-30 10:00:00 UTC",
    }


def gitlab_job(build_id: int, status: str = "failed", reason: str | None = None) -> dict:
    return {
        "object_kind": "build",
        "ref": "main",
        "tag": False,
        "sha": "bcbb5ec396a2c0f828686f14fac9b80b780504f2",
        "build_id": build_id,
        "build_name": "rspec",
        "build_stage": "test",
        "build_status": status,
        "build_failure_reason": reason,
        "build_started_at": "2026-11-30 10:01:00 UTC",
        "build_finished_at": "2026-11-30 10:02:00 UTC",
        "pipeline_id": 9001,
        "project_id": 77,
        "project_name": "Acme / Shop",
        "repository": {"name": "shop", "homepage": "https://gitlab.example/acme/shop"},
    }


async def events_on(js: JetStreamContext, tenant: str, provider: str) -> int:
    """How many messages CI_EVENTS holds on ci.events.<tenant>.<provider>."""
    subject = subjects.ci_events(tenant, provider)
    info = await js.stream_info(CI_EVENTS.name, subjects_filter=subject)
    return (info.state.subjects or {}).get(subject, 0)


async def wait_for_event(
    js: JetStreamContext, tenant: str, provider: str, timeout: float = 20.0
) -> tuple[CiEvent, dict[str, str]]:
    """The last CiEvent on the tenant's subject (and its headers), waiting for one."""
    subject = subjects.ci_events(tenant, provider)
    end = time.monotonic() + timeout
    while True:
        try:
            msg = await js.get_last_msg(CI_EVENTS.name, subject)
            return decode(msg.data, CiEvent), dict(msg.headers or {})
        except NotFoundError:
            if time.monotonic() > end:
                raise AssertionError(f"no CiEvent on {subject} in {timeout}s") from None
            await asyncio.sleep(0.1)
