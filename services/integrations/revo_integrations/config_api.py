"""The operator's endpoints of the integrations service (`revo integrations`, `revo ci-policy`):
integrations.config.put|list|remove and integrations.policy.put|get, queue group
`integrations` (one replica answers each request).

Only the operator's NATS identity may publish to these subjects (bus_identities: no other
identity has `integrations.>` in its allow-list), so the caller is the operator: the audit
events say so. A secret never leaves the service again: the list answers masks, and the
audit events carry the kind and the tenant, never a field's value.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import AsyncIterator

from aiohttp import web
from standardwebhooks.webhooks import EmptyWebhookSecretError, Webhook

from revo_contracts import subjects
from revo_contracts.bus_identities import OPERATOR
from revo_contracts.integrations import (
    CiPolicy,
    Done,
    Integration,
    IntegrationListRequest,
    IntegrationListResponse,
    IntegrationPut,
    IntegrationRef,
    JiraIntegration,
    PolicyGet,
    PolicyPut,
    SlackIntegration,
    WebhookIntegration,
)
from revo_core.audit import audit_event, record_audit
from revo_core.bus import Bus
from revo_core.endpoints import Endpoints
from revo_core.errors import InvalidRequest, NotFound
from revo_core.logging import get_logger
from revo_core.service import BUS
from revo_integrations.app_keys import CONFIGS, POOL
from revo_integrations.ci_policy import PolicyStore
from revo_integrations.config_store import ConfigStore

SERVICE = "integrations"
# Fields that hold a URL the service will call: http(s) only (no file:, no gopher:).
_URL_FIELDS = ("api_url", "site", "url", "webhook_url")
log = get_logger("revo.integrations.config")
# The micro service `integrations`: a later cleanup context adds its endpoints to it
# (`await app[ENDPOINTS].add(name, subject, request_type, handler, queue_group)`).
ENDPOINTS: web.AppKey[Endpoints] = web.AppKey("endpoints", Endpoints)


class ConfigApi:
    def __init__(self, bus: Bus, configs: ConfigStore, policies: PolicyStore) -> None:
        self.bus = bus
        self.configs = configs
        self.policies = policies

    async def put(self, request: IntegrationPut) -> Done:
        integration, made = _with_secret(request.integration)
        _check(integration)
        await self.configs.put(request.tenant, integration)
        kind = _kind(integration)
        await record_audit(self.bus, _audit(request.tenant, "integration.added", kind))
        log.info("integration stored", tenant=request.tenant, kind=kind)
        return Done(secret=made)

    async def list(self, request: IntegrationListRequest) -> IntegrationListResponse:
        return IntegrationListResponse(integrations=await self.configs.list(request.tenant))

    async def remove(self, request: IntegrationRef) -> Done:
        if not await self.configs.remove(request.tenant, request.kind):
            raise NotFound(
                f"tenant {request.tenant!r} has no {request.kind} integration",
                {"tenant": request.tenant, "kind": request.kind},
            )
        await record_audit(self.bus, _audit(request.tenant, "integration.removed", request.kind))
        log.info("integration removed", tenant=request.tenant, kind=request.kind)
        return Done()

    async def put_policy(self, request: PolicyPut) -> Done:
        await self.policies.put(request.tenant, request.policy)
        log.info("ci policy stored", tenant=request.tenant, agent=request.policy.agent)
        return Done()

    async def get_policy(self, request: PolicyGet) -> CiPolicy:
        return await self.policies.get(request.tenant)


async def start_config_endpoints(api: ConfigApi) -> Endpoints:
    endpoints = Endpoints(api.bus, SERVICE, description="Tenants' integrations and CI policies")
    await endpoints.start()
    group = subjects.INTEGRATIONS_QUEUE_GROUP
    for name, subject, request_type, handler in (
        ("config_put", subjects.INTEGRATIONS_CONFIG_PUT, IntegrationPut, api.put),
        ("config_list", subjects.INTEGRATIONS_CONFIG_LIST, IntegrationListRequest, api.list),
        ("config_remove", subjects.INTEGRATIONS_CONFIG_REMOVE, IntegrationRef, api.remove),
        ("policy_put", subjects.INTEGRATIONS_POLICY_PUT, PolicyPut, api.put_policy),
        ("policy_get", subjects.INTEGRATIONS_POLICY_GET, PolicyGet, api.get_policy),
    ):
        await endpoints.add(name, subject, request_type, handler, group)
    return endpoints


async def config_endpoints_ctx(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: serve the endpoints while the app runs (after the database context)."""
    api = ConfigApi(app[BUS], app[CONFIGS], PolicyStore(app[POOL]))
    endpoints = await start_config_endpoints(api)
    app[ENDPOINTS] = endpoints  # the service's other operator endpoints join this one
    yield
    await endpoints.stop(grace=5)


def new_webhook_secret() -> str:
    """A Standard Webhooks secret: "whsec_" and the base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def _with_secret(integration: Integration) -> tuple[Integration, str]:
    """A webhook integration put without a secret gets one made here; (integration, the
    secret made or "")."""
    if isinstance(integration, WebhookIntegration) and not integration.secret:
        made = new_webhook_secret()
        return WebhookIntegration(url=integration.url, secret=made), made
    return integration, ""


def _check(integration: Integration) -> None:
    """What the contract's types cannot say; each refusal names its field."""
    for name in _URL_FIELDS:
        value = getattr(integration, name, "")
        if value and not value.startswith(("https://", "http://")):
            _refuse(name, f"{name} must be an http(s) URL, not {value[:80]!r}")
    if isinstance(integration, WebhookIntegration):
        if not integration.url:
            _refuse("url", "a webhook integration needs the receiver's url")
        try:
            Webhook(integration.secret)  # the receiver's verifier must be able to read it
        except (EmptyWebhookSecretError, ValueError) as exc:
            _refuse("secret", f"secret is not a Standard Webhooks secret (whsec_<base64>): {exc}")
    if isinstance(integration, SlackIntegration) and not (
        integration.webhook_url or (integration.token and integration.channel)
    ):
        _refuse("webhook_url", "slack needs a webhook_url, or a token and a channel")
    if isinstance(integration, JiraIntegration) and not integration.site:
        _refuse("site", "jira needs its site (https://<team>.atlassian.net)")


def _refuse(field: str, message: str) -> None:
    raise InvalidRequest(message, {"field": f"integration.{field}"})


def _kind(integration: Integration) -> str:
    return type(integration).__struct_config__.tag


def _audit(tenant: str, action: str, kind: str):
    return audit_event(
        tenant, OPERATOR, action, target=f"integration:{kind}", service=SERVICE, kind=kind
    )
