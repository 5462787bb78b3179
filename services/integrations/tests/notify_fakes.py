"""Destinations of notifications as real HTTP servers in the test: GitHub's REST API, Slack,
Jira Cloud and a Standard Webhooks receiver. Each checks the authentication and the shape
of what it receives (a wrong one is answered as the real service would, and recorded in
`problems`), and keeps what was made, so tests can count comments, issues, deliveries."""

from __future__ import annotations

import asyncio
import base64
import itertools
import re
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from standardwebhooks import Webhook

from revo_core.embedded.ports import free_port


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    at: float


class FakeDestination:
    def __init__(self) -> None:
        self.app = web.Application()
        self.seen: list[Seen] = []
        self.problems: list[str] = []
        self.port = free_port()
        self._runner: web.AppRunner | None = None
        # Scripted failures: answer this status to the next `fail_times` calls (None: forever).
        self.fail_status = 500
        self.fail_times: int | None = 0
        self.fail_headers: dict[str, str] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> FakeDestination:
        self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def fail(self, times: int | None, status: int = 500, **headers: str) -> None:
        self.fail_times, self.fail_status, self.fail_headers = times, status, headers

    async def _record(self, request: web.Request) -> Seen:
        raw = await request.read()
        try:
            body: Any = await request.json() if raw else None
        except ValueError:
            body = raw
        seen = Seen(
            request.method,
            request.path_qs,
            dict(request.headers),
            body,
            asyncio.get_running_loop().time(),
        )
        self.seen.append(seen)
        return seen

    def _scripted_failure(self) -> web.Response | None:
        if self.fail_times is None or self.fail_times > 0:
            if self.fail_times is not None:
                self.fail_times -= 1
            return web.json_response(
                {"message": "scripted failure"}, status=self.fail_status, headers=self.fail_headers
            )
        return None


class WebhookReceiver(FakeDestination):
    """Verifies every POST with standardwebhooks' own Webhook.verify and dedupes by
    webhook-id, as the scheme tells receivers to."""

    def __init__(self, secret: str, delay_s: float = 0.0) -> None:
        super().__init__()
        self.secret = secret
        self.delay_s = delay_s
        self.delivered: dict[str, Any] = {}  # webhook-id -> payload, first one kept
        self.app.router.add_post("/hook", self._hook)

    @property
    def hook_url(self) -> str:
        return f"{self.url}/hook"

    async def _hook(self, request: web.Request) -> web.Response:
        raw = await request.read()
        self.seen.append(Seen("POST", "/hook", dict(request.headers), raw, 0.0))
        try:
            payload = Webhook(self.secret).verify(raw, dict(request.headers))
        except Exception as exc:
            self.problems.append(f"verify: {exc}")
            return web.json_response({"error": "bad signature"}, status=401)
        if request.headers.get("Content-Type", "").split(";")[0] != "application/json":
            self.problems.append("content type")
        failure = self._scripted_failure()
        if failure is not None:
            return failure
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        self.delivered.setdefault(request.headers["webhook-id"], payload)
        return web.json_response({"ok": True})


class FakeGithub(FakeDestination):
    def __init__(self, token: str) -> None:
        super().__init__()
        self.token = token
        self.check_runs: list[dict] = []
        self.comments: dict[int, dict] = {}  # id -> {"body", "where"}
        self._ids = itertools.count(1000)
        # Seconds to sleep after storing a new comment, before answering (a slow GitHub).
        self.comment_delay_s = 0.0
        # Check runs answered without their ids (an API that changed under us).
        self.check_run_without_id = False
        r = self.app.router
        r.add_get("/rate_limit", self._rate_limit)
        r.add_post("/repos/{owner}/{repo}/check-runs", self._create_check_run)
        r.add_get("/repos/{owner}/{repo}/commits/{ref}/check-runs", self._list_check_runs)
        r.add_post("/repos/{owner}/{repo}/issues/{number}/comments", self._create_comment)
        r.add_get("/repos/{owner}/{repo}/issues/{number}/comments", self._list_comments)
        r.add_patch("/repos/{owner}/{repo}/issues/comments/{id}", self._update_comment)
        r.add_post("/repos/{owner}/{repo}/commits/{sha}/comments", self._create_comment)
        r.add_get("/repos/{owner}/{repo}/commits/{sha}/comments", self._list_comments)
        r.add_patch("/repos/{owner}/{repo}/comments/{id}", self._update_comment)

    def _authorized(self, request: web.Request) -> bool:
        ok = request.headers.get("Authorization") == f"Bearer {self.token}"
        if not ok:
            self.problems.append(f"auth {request.path}")
        if request.headers.get("Accept") != "application/vnd.github+json":
            self.problems.append(f"accept {request.path}")
        return ok

    async def _guard(self, request: web.Request) -> web.Response | None:
        await self._record(request)
        if not self._authorized(request):
            return web.json_response({"message": "Bad credentials"}, status=401)
        return self._scripted_failure()

    async def _rate_limit(self, request: web.Request) -> web.Response:
        return await self._guard(request) or web.json_response({"resources": {}})

    async def _create_check_run(self, request: web.Request) -> web.Response:
        refused = await self._guard(request)
        if refused:
            return refused
        body = self.seen[-1].body
        for name in ("name", "head_sha", "status", "conclusion", "output", "external_id"):
            if name not in body:
                self.problems.append(f"check run without {name}")
        for annotation in body["output"].get("annotations", []):
            if not {"path", "start_line", "end_line", "annotation_level", "message"} <= set(
                annotation
            ):
                self.problems.append(f"annotation shape {annotation}")
        run = {"id": next(self._ids), **body}
        self.check_runs.append(run)
        if self.check_run_without_id:
            return web.json_response({"status": "completed"}, status=201)
        return web.json_response(run, status=201)

    async def _list_check_runs(self, request: web.Request) -> web.Response:
        refused = await self._guard(request)
        if refused:
            return refused
        ref = request.match_info["ref"]
        runs = [run for run in self.check_runs if run["head_sha"] == ref]
        if self.check_run_without_id:
            runs = [{k: v for k, v in run.items() if k != "id"} for run in runs]
        return web.json_response({"total_count": len(runs), "check_runs": runs})

    def _where(self, request: web.Request) -> str:
        info = request.match_info
        return f"#{info['number']}" if "number" in info else f"@{info['sha']}"

    async def _create_comment(self, request: web.Request) -> web.Response:
        refused = await self._guard(request)
        if refused:
            return refused
        body = self.seen[-1].body
        if not isinstance(body, dict) or not body.get("body"):
            self.problems.append("comment without body")
            return web.json_response({"message": "Validation Failed"}, status=422)
        comment_id = next(self._ids)
        self.comments[comment_id] = {"body": body["body"], "where": self._where(request)}
        if self.comment_delay_s:
            await asyncio.sleep(self.comment_delay_s)
        return web.json_response({"id": comment_id, "body": body["body"]}, status=201)

    async def _list_comments(self, request: web.Request) -> web.Response:
        refused = await self._guard(request)
        if refused:
            return refused
        where = self._where(request)
        return web.json_response(
            [{"id": i, "body": c["body"]} for i, c in self.comments.items() if c["where"] == where]
        )

    async def _update_comment(self, request: web.Request) -> web.Response:
        refused = await self._guard(request)
        if refused:
            return refused
        comment_id = int(request.match_info["id"])
        if comment_id not in self.comments:
            return web.json_response({"message": "Not Found"}, status=404)
        self.comments[comment_id]["body"] = self.seen[-1].body["body"]
        return web.json_response({"id": comment_id, **self.comments[comment_id]})


class FakeSlack(FakeDestination):
    """chat.postMessage (bearer token, JSON) and an incoming webhook at /services/T/B/X."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self.token = token
        self.messages: list[dict] = []
        self._ts = itertools.count(1)
        self.app.router.add_post("/api/chat.postMessage", self._post_message)
        self.app.router.add_post("/services/T000/B000/secret", self._incoming)

    @property
    def api_url(self) -> str:
        return f"{self.url}/api"

    @property
    def webhook_url(self) -> str:
        return f"{self.url}/services/T000/B000/secret"

    async def _post_message(self, request: web.Request) -> web.Response:
        seen = await self._record(request)
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response({"ok": False, "error": "invalid_auth"})
        failure = self._scripted_failure()
        if failure is not None:
            return failure
        self._check_message(seen.body)
        if not seen.body.get("channel"):
            return web.json_response({"ok": False, "error": "channel_not_found"})
        self.messages.append(seen.body)
        return web.json_response({"ok": True, "channel": "C1", "ts": f"{next(self._ts)}.000"})

    async def _incoming(self, request: web.Request) -> web.Response:
        seen = await self._record(request)
        failure = self._scripted_failure()
        if failure is not None:
            return failure
        self._check_message(seen.body)
        self.messages.append(seen.body)
        return web.Response(text="ok")

    def _check_message(self, body: Any) -> None:
        if not isinstance(body, dict) or not body.get("text") or not body.get("blocks"):
            self.problems.append(f"message shape {body!r:.200}")
            return
        for block in body["blocks"]:
            if block.get("type") not in ("header", "section", "context", "divider"):
                self.problems.append(f"block type {block.get('type')}")


class FakeJira(FakeDestination):
    def __init__(self, email: str, token: str, project: str) -> None:
        super().__init__()
        self.auth = "Basic " + base64.b64encode(f"{email}:{token}".encode()).decode()
        self.project = project
        self.issues: dict[str, dict] = {}  # key -> {"fields", "comments", "status"}
        self._numbers = itertools.count(1)
        # Seconds to sleep after creating an issue, before answering (a slow Jira).
        self.create_delay_s = 0.0
        r = self.app.router
        r.add_post("/rest/api/3/issue", self._create)
        r.add_get("/rest/api/3/issue/{key}", self._get)
        r.add_post("/rest/api/3/issue/{key}/comment", self._comment)
        r.add_get("/rest/api/3/issue/{key}/comment", self._comments)
        r.add_post("/rest/api/3/search/jql", self._search)
        r.add_get("/rest/api/3/project/{key}", self._project)

    async def _guard(self, request: web.Request) -> web.Response | None:
        await self._record(request)
        if request.headers.get("Authorization") != self.auth:
            self.problems.append(f"auth {request.path}")
            return web.json_response({"errorMessages": ["unauthorized"]}, status=401)
        return self._scripted_failure()

    async def _project(self, request: web.Request) -> web.Response:
        refused = await self._guard(request)
        if refused:
            return refused
        if request.match_info["key"] != self.project:
            return web.json_response({"errorMessages": ["No project"]}, status=404)
        return web.json_response({"key": self.project, "name": "Project"})

    async def _create(self, request: web.Request) -> web.Response:
        refused = await self._guard(request)
        if refused:
            return refused
        fields = self.seen[-1].body["fields"]
        self._check_adf(fields.get("description"))
        if fields.get("project", {}).get("key") != self.project or not fields.get("summary"):
            self.problems.append(f"issue fields {fields!r:.200}")
            return web.json_response({"errors": {"project": "invalid"}}, status=400)
        key = f"{self.project}-{next(self._numbers)}"
        self.issues[key] = {"fields": fields, "comments": [], "status": "new"}
        if self.create_delay_s:
            await asyncio.sleep(self.create_delay_s)
        return web.json_response({"id": "1", "key": key}, status=201)

    async def _get(self, request: web.Request) -> web.Response:
        refused = await self._guard(request)
        if refused:
            return refused
        issue = self.issues.get(request.match_info["key"])
        if issue is None:
            return web.json_response({"errorMessages": ["Issue does not exist"]}, status=404)
        category = {"key": issue["status"]}
        return web.json_response({"fields": {"status": {"statusCategory": category}}})

    async def _comment(self, request: web.Request) -> web.Response:
        refused = await self._guard(request)
        if refused:
            return refused
        issue = self.issues.get(request.match_info["key"])
        if issue is None:
            return web.json_response({"errorMessages": ["Issue does not exist"]}, status=404)
        body = self.seen[-1].body["body"]
        self._check_adf(body)
        issue["comments"].append(body)
        return web.json_response({"id": str(len(issue["comments"]))}, status=201)

    async def _comments(self, request: web.Request) -> web.Response:
        refused = await self._guard(request)
        if refused:
            return refused
        issue = self.issues.get(request.match_info["key"], {"comments": []})
        return web.json_response({"comments": [{"body": b} for b in issue["comments"]]})

    async def _search(self, request: web.Request) -> web.Response:
        refused = await self._guard(request)
        if refused:
            return refused
        jql = self.seen[-1].body["jql"]
        label = re.search(r'labels = "([^"]+)"', jql)
        open_only = "statusCategory != Done" in jql
        found = [
            {"key": key, "fields": {"labels": issue["fields"]["labels"]}}
            for key, issue in reversed(self.issues.items())
            if label
            and label.group(1) in issue["fields"].get("labels", [])
            and not (open_only and issue["status"] == "done")
        ]
        return web.json_response({"issues": found[:1]})

    def _check_adf(self, doc: Any) -> None:
        if not (isinstance(doc, dict) and doc.get("type") == "doc" and doc.get("version") == 1):
            self.problems.append(f"not ADF: {doc!r:.200}")
            return
        for node in doc.get("content", []):
            if node.get("type") not in ("paragraph", "bulletList", "heading", "codeBlock"):
                self.problems.append(f"ADF node {node.get('type')}")


@dataclass
class Started:
    destinations: list[FakeDestination] = field(default_factory=list)

    async def start(self, destination: FakeDestination) -> Any:
        self.destinations.append(await destination.start())
        return destination

    async def stop(self) -> None:
        for destination in self.destinations:
            await destination.stop()
