"""Jira (REST v3, basic auth email:api_token): an issue per failure signature, with an ADF
description; the next notification of the same failure comments on the open issue instead
of opening a duplicate.

The open issue is found by the stored key (`integrations.notify_threads`, checked still
open) or by its label `revo-<signature hash>` (JQL), so an issue survives a lost database
too. Every issue also carries `revo-n-<notification hash>`, and every comment a footer with
the notification id: a retry whose earlier attempt may have reached Jira unheard finds
what it made instead of making it again.
"""

from __future__ import annotations

import hashlib

import aiohttp

from revo_contracts.integrations import Integration, JiraIntegration
from revo_contracts.notify import Notification
from revo_integrations.channels import DeliveryContext, DeliveryFailed
from revo_integrations.channels.http import base, call


class JiraChannel:
    name = "jira"

    def rate_key(self, note: Notification, integration: Integration) -> str:
        assert isinstance(integration, JiraIntegration)
        return f"jira:{base(integration.site)}"

    async def deliver(
        self, ctx: DeliveryContext, note: Notification, integration: Integration
    ) -> None:
        assert isinstance(integration, JiraIntegration)
        if "issue_key" in ctx.posted:
            return  # created or commented on by an earlier attempt
        jira = _Jira(ctx, integration)
        thread = note.signature or note.notification_id
        if ctx.maybe_posted_before:
            # Before looking for the failure's open issue: that may be the one this
            # notification's cut attempt made (it carries the notification's label).
            mine = await jira.search(f'labels = "{notification_label(note)}"')
            if mine is not None:
                await _keep(ctx, note, jira, thread, mine, created=True)
                return
        key = await _open_issue(jira, ctx, note, thread)
        if key is None:
            key = await jira.create(note, thread)
            await _keep(ctx, note, jira, thread, key, created=True)
            return
        if not (ctx.maybe_posted_before and await jira.has_comment(key, footer(note))):
            await jira.comment(key, note)
        await _keep(ctx, note, jira, thread, key, created=False)

    async def test(self, ctx: DeliveryContext, integration: Integration) -> None:
        # A test issue would be work in someone's backlog: reading the project proves the
        # site, the credentials and the project instead.
        assert isinstance(integration, JiraIntegration)
        jira = _Jira(ctx, integration)
        await call(
            ctx,
            "GET",
            f"{jira.root}/project/{integration.project}",
            "/rest/api/3/project/{key}",
            auth=jira.auth,
        )


async def _open_issue(
    jira: _Jira, ctx: DeliveryContext, note: Notification, thread: str
) -> str | None:
    if ctx.store is not None:
        stored = await ctx.store.thread(note.tenant, "jira", jira.project_ref, thread)
        if stored is not None and await jira.is_open(stored):
            return stored
    return await jira.search(f'labels = "{signature_label(thread)}" AND statusCategory != Done')


async def _keep(
    ctx: DeliveryContext, note: Notification, jira: _Jira, thread: str, key: str, created: bool
) -> None:
    if ctx.store is not None:
        await ctx.store.keep_thread(note.tenant, "jira", jira.project_ref, thread, key)
    await ctx.keep(issue_key=key, created=created)


class _Jira:
    def __init__(self, ctx: DeliveryContext, integration: JiraIntegration) -> None:
        self.ctx = ctx
        self.integration = integration
        self.root = f"{base(integration.site)}/rest/api/3"
        self.project_ref = f"{base(integration.site)}/{integration.project}"
        self.auth = aiohttp.BasicAuth(integration.email, integration.api_token)

    async def search(self, condition: str) -> str | None:
        """The newest issue of the project matching the JQL condition."""
        jql = f'project = "{self.integration.project}" AND {condition} ORDER BY created DESC'
        answer = await call(
            self.ctx,
            "POST",
            f"{self.root}/search/jql",
            "/rest/api/3/search/jql",
            auth=self.auth,
            json={"jql": jql, "fields": ["status", "labels"], "maxResults": 1},
        )
        issues = answer.field("issues") or []
        return issues[0]["key"] if issues else None

    async def is_open(self, key: str) -> bool:
        try:
            answer = await call(
                self.ctx,
                "GET",
                f"{self.root}/issue/{key}?fields=status",
                "/rest/api/3/issue/{key}",
                auth=self.auth,
            )
        except DeliveryFailed as failed:
            if failed.status == 404:
                return False
            raise
        status = (answer.field("fields") or {}).get("status") or {}
        return (status.get("statusCategory") or {}).get("key") != "done"

    async def create(self, note: Notification, thread: str) -> str:
        fields = {
            "project": {"key": self.integration.project},
            "issuetype": {"name": self.integration.issue_type},
            "summary": note.title[:255],
            "description": adf(note),
            "labels": ["revo", signature_label(thread), notification_label(note)],
        }
        answer = await call(
            self.ctx,
            "POST",
            f"{self.root}/issue",
            "/rest/api/3/issue",
            auth=self.auth,
            json={"fields": fields},
        )
        return str(answer.field("key"))

    async def comment(self, key: str, note: Notification) -> None:
        await call(
            self.ctx,
            "POST",
            f"{self.root}/issue/{key}/comment",
            "/rest/api/3/issue/{key}/comment",
            auth=self.auth,
            json={"body": adf(note)},
        )

    async def has_comment(self, key: str, text: str) -> bool:
        answer = await call(
            self.ctx,
            "GET",
            f"{self.root}/issue/{key}/comment?maxResults=100&orderBy=-created",
            "/rest/api/3/issue/{key}/comment",
            auth=self.auth,
        )
        comments = answer.field("comments") or []
        return any(text in _texts(comment.get("body")) for comment in comments)


def signature_label(thread: str) -> str:
    return f"revo-{hashlib.sha256(thread.encode()).hexdigest()[:20]}"


def notification_label(note: Notification) -> str:
    return f"revo-n-{hashlib.sha256(note.notification_id.encode()).hexdigest()[:20]}"


def footer(note: Notification) -> str:
    return f"revo notification {note.notification_id}"


def adf(note: Notification) -> dict:
    """The notification as an Atlassian Document Format document."""
    content: list[dict] = []
    if note.failing_test:
        content.append(_paragraph(_text("Failing test: ", strong=True), _code(note.failing_test)))
    if note.root_cause:
        cause = [_text("Root cause: ", strong=True), _text(note.root_cause)]
        if note.links:
            cause += [_text(" "), _link(note.links[0].title, note.links[0].url)]
        content.append(_paragraph(*cause))
    if note.annotations:
        content.append(
            {
                "type": "bulletList",
                "content": [
                    {
                        "type": "listItem",
                        "content": [
                            _paragraph(
                                _code(f"{a.path}:{a.line}"), _text(f" {a.title or a.message[:300]}")
                            )
                        ],
                    }
                    for a in note.annotations
                ],
            }
        )
    if note.summary:
        content.append(_paragraph(_text(note.summary[:30000])))
    for link in note.links[1:]:
        content.append(_paragraph(_link(link.title, link.url)))
    content.append(_paragraph(_text(footer(note), em=True)))
    return {"type": "doc", "version": 1, "content": content}


def _paragraph(*parts: dict) -> dict:
    return {"type": "paragraph", "content": list(parts)}


def _text(text: str, strong: bool = False, em: bool = False) -> dict:
    node: dict = {"type": "text", "text": text}
    marks = [{"type": "strong"}] if strong else [{"type": "em"}] if em else []
    if marks:
        node["marks"] = marks
    return node


def _code(text: str) -> dict:
    return {"type": "text", "text": text, "marks": [{"type": "code"}]}


def _link(title: str, url: str) -> dict:
    return {"type": "text", "text": title, "marks": [{"type": "link", "attrs": {"href": url}}]}


def _texts(node: object) -> str:
    """Every text of an ADF document, joined (to find a footer in a comment)."""
    if isinstance(node, dict):
        own = node.get("text", "") if node.get("type") == "text" else ""
        return own + "".join(_texts(child) for child in node.get("content", []))
    if isinstance(node, list):
        return "".join(_texts(child) for child in node)
    return ""
