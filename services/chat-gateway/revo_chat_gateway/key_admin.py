"""API keys for operators, on NATS: `gateway.keys.create`, `.list`, `.revoke`.

These answer whoever may publish on `gateway.keys.*` (NATS permissions give that to the
operator's identity only). Creating and revoking a key are audited (actor `operator`). A
revocation is in Postgres, where every replica looks keys up on every request, so no
replica accepts the key afterwards; it is also broadcast on `gateway.keys.revoked`, and
every replica closes the chat sockets opened with the key (a socket is authenticated once,
at its handshake).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web
from nats.aio.msg import Msg

from revo_chat_gateway.keys import KeyStore
from revo_chat_gateway.ws_chat import CHAT_HUB
from revo_contracts import subjects
from revo_contracts.audit import AuditAction
from revo_contracts.bus_identities import OPERATOR
from revo_contracts.gateway import (
    KeyCreateRequest,
    KeyCreateResponse,
    KeyListRequest,
    KeyRevoked,
    KeyRevokeRequest,
    KeyRevokeResponse,
)
from revo_core.audit import audit_event, record_audit
from revo_core.bus import Bus
from revo_core.endpoints import Endpoints
from revo_core.logging import get_logger
from revo_core.service import BUS

log = get_logger("revo.chat_gateway.keys")


class KeyAdmin:
    def __init__(self, keys: KeyStore, bus: Bus, service: str) -> None:
        self.keys = keys
        self.bus = bus
        self.service = service

    async def add_endpoints(self, endpoints: Endpoints) -> None:
        group = subjects.GATEWAY_QUEUE_GROUP
        await endpoints.add(
            "keys_create", subjects.GATEWAY_KEYS_CREATE, KeyCreateRequest, self.create, group
        )
        await endpoints.add(
            "keys_list", subjects.GATEWAY_KEYS_LIST, KeyListRequest, self.keys.list, group
        )
        await endpoints.add(
            "keys_revoke", subjects.GATEWAY_KEYS_REVOKE, KeyRevokeRequest, self.revoke, group
        )

    async def create(self, request: KeyCreateRequest) -> KeyCreateResponse:
        created = await self.keys.create(request)
        await self._audit(request.tenant, "key.created", created.key_id, role=created.role)
        return created

    async def revoke(
        self, request: KeyRevokeRequest, tenant: str | None = None, actor: str = OPERATOR
    ) -> KeyRevokeResponse:
        """Revoke a key (with a tenant: only that tenant's, NotFound otherwise)."""
        revoked, newly = await self.keys.revoke(request, tenant)
        await self.bus.publish(subjects.GATEWAY_KEYS_REVOKED, KeyRevoked(key_id=request.key_id))
        if newly:  # a second revocation changes nothing, and is not recorded again
            log.info("API key revoked", key_id=request.key_id, tenant=revoked.tenant, by=actor)
            await self._audit(revoked.tenant, "key.revoked", request.key_id, actor)
        return revoked

    async def _audit(
        self, tenant: str, action: AuditAction, key_id: str, actor: str = OPERATOR, **details: str
    ) -> None:
        event = audit_event(tenant, actor, action, target=key_id, service=self.service, **details)
        await record_audit(self.bus, event)


KEY_ADMIN: web.AppKey[KeyAdmin] = web.AppKey("key_admin", KeyAdmin)


async def revoked_keys_ctx(app: web.Application) -> AsyncIterator[None]:
    """Every replica hears each revocation (no queue group) and closes its own sockets."""

    async def on_revoked(revoked: KeyRevoked, _: Msg) -> None:
        hub = app.get(CHAT_HUB)
        if hub is not None:
            await hub.close_sockets_of_key(revoked.key_id)

    bus = app[BUS]
    subscription = await bus.subscribe(subjects.GATEWAY_KEYS_REVOKED, on_revoked, KeyRevoked)
    yield
    await subscription.unsubscribe()
