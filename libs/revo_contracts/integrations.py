"""A tenant's integrations and CI policy, as the integrations service keeps them.

One integration per (tenant, kind). Secret fields (SECRET_FIELDS) are stored encrypted and
never leave the service again: `integrations.config.list` answers them masked. Served to
the operator (`revo integrations add|list|remove|test`, `revo ci-policy`) over NATS.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from revo_contracts.inference import TenantId
from revo_contracts.notify import Channel

Secret = Annotated[str, Meta(max_length=4096)]
Url = Annotated[str, Meta(max_length=2048)]
Glob = Annotated[str, Meta(min_length=1, max_length=256)]
IntegrationKind = Literal["github", "gitlab", "slack", "jira", "webhook"]
KINDS: tuple[str, ...] = ("github", "gitlab", "slack", "jira", "webhook")


class GithubIntegration(msgspec.Struct, kw_only=True, tag="github", omit_defaults=True):
    # X-Hub-Signature-256 of every webhook is checked with it.
    webhook_secret: Secret = ""
    # A PAT or installation token: fetches job logs, posts check runs and comments.
    token: Secret = ""
    api_url: Url = "https://api.github.com"
    check_runs: bool = True
    comments: bool = True


class GitlabIntegration(msgspec.Struct, kw_only=True, tag="gitlab", omit_defaults=True):
    # Compared with X-Gitlab-Token (constant time).
    webhook_token: Secret = ""
    token: Secret = ""
    api_url: Url = "https://gitlab.com/api/v4"


class SlackIntegration(msgspec.Struct, kw_only=True, tag="slack", omit_defaults=True):
    # Either an incoming webhook URL, or a bot token with a channel (chat.postMessage).
    webhook_url: Secret = ""
    token: Secret = ""
    channel: Annotated[str, Meta(max_length=128)] = ""
    api_url: Url = "https://slack.com/api"


class JiraIntegration(msgspec.Struct, kw_only=True, tag="jira", omit_defaults=True):
    site: Url  # https://<team>.atlassian.net, or a Jira Server/Data Center base URL
    email: Annotated[str, Meta(max_length=320)] = ""
    api_token: Secret = ""
    project: Annotated[str, Meta(min_length=1, max_length=64)]
    issue_type: Annotated[str, Meta(max_length=64)] = "Bug"


class WebhookIntegration(msgspec.Struct, kw_only=True, tag="webhook", omit_defaults=True):
    url: Url
    # Standard Webhooks secret ("whsec_" + base64); made by the service when left empty.
    secret: Secret = ""


Integration = (
    GithubIntegration | GitlabIntegration | SlackIntegration | JiraIntegration | WebhookIntegration
)
SECRET_FIELDS: dict[str, tuple[str, ...]] = {
    "github": ("webhook_secret", "token"),
    "gitlab": ("webhook_token", "token"),
    "slack": ("webhook_url", "token"),
    "jira": ("api_token",),
    "webhook": ("secret",),
}
MASK = "********"


class CiPolicy(msgspec.Struct, kw_only=True, omit_defaults=True):
    """What a failing CI event starts, for one tenant."""

    enabled: bool = True
    agent: Annotated[str, Meta(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")] = "ci-debugger"
    # fnmatch globs over the repository's full name and the branch; empty = every one.
    repositories: list[Glob] = []
    branches: list[Glob] = []
    # The same failure (repository, workflow, job, commit) starts one run in this window.
    window_s: Annotated[float, Meta(ge=0, le=30 * 24 * 3600)] = 3600.0
    # Where the investigation's outcome is announced.
    notify: list[Channel] = []


class IntegrationPut(msgspec.Struct, kw_only=True):
    tenant: TenantId
    integration: Integration


class IntegrationRef(msgspec.Struct, kw_only=True):
    tenant: TenantId
    kind: IntegrationKind


class IntegrationListRequest(msgspec.Struct, kw_only=True, omit_defaults=True):
    tenant: TenantId | None = None


class IntegrationInfo(msgspec.Struct, kw_only=True):
    tenant: TenantId
    kind: IntegrationKind
    # The integration with its secrets masked.
    integration: Integration
    updated_at: float


class IntegrationListResponse(msgspec.Struct, kw_only=True):
    integrations: list[IntegrationInfo]


class IntegrationTestResult(msgspec.Struct, kw_only=True):
    """What the destination answered to a real test notification."""

    delivered: bool
    status: int | None = None
    detail: str = ""


class PolicyPut(msgspec.Struct, kw_only=True):
    tenant: TenantId
    policy: CiPolicy


class PolicyGet(msgspec.Struct, kw_only=True):
    tenant: TenantId


class Done(msgspec.Struct, kw_only=True):
    """The answer of a change that has nothing else to tell (put, remove, redrive)."""

    done: bool = True
    count: int = 1
    # A secret the service made for the change (the Standard Webhooks secret of a webhook
    # integration put without one): answered this once, for the receiver's verifier.
    secret: Secret = ""
