"""API keys for operators, on NATS: `gateway.keys.create`, `.list`, `.revoke`.

These answer whoever may publish on `gateway.keys.*` (NATS permissions give that to the
operators' identity only). A revocation is in Postgres, where every replica looks keys up
on every request, so no replica accepts the key afterwards; it is also broadcast on
`gateway.keys.revoked`, and every replica closes the chat sockets opened with the key
(a socket is authenticated once, at its handshake).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web
from nats.aio.msg import Msg

from revo_chat_gateway.auth import AUTHENTICATOR
from revo_chat_gateway.keys import KeyStore
from revo_chat_gateway.ws_chat import CHAT_HUB
from revo_contracts import subjects
from revo_contracts.gateway import (
    KeyCreateRequest,
    KeyListRequest,
    KeyRevoked,
    KeyRevokeRequest,
    KeyRevokeResponse,
)
from revo_core.bus import Bus
from revo_core.endpoints import Endpoints
from revo_core.logging import get_logger
from revo_core.service import BUS

log = get_logger("revo.chat_gateway.keys")


class KeyRevocation:
    def __init__(self, keys: KeyStore, bus: Bus) -> None:
        self.keys = keys
        self.bus = bus

    async def revoke(self, request: KeyRevokeRequest) -> KeyRevokeResponse:
        revoked = await self.keys.revoke(request)
        await self.bus.publish(subjects.GATEWAY_KEYS_REVOKED, KeyRevoked(key_id=request.key_id))
        log.info("API key revoked", key_id=request.key_id, tenant=revoked.tenant)
        return revoked


async def key_admin_ctx(app: web.Application) -> AsyncIterator[None]:
    keys = app[AUTHENTICATOR].keys
    bus = app[BUS]
    endpoints = Endpoints(bus, "chat_gateway", description="API keys of the gateway")
    await endpoints.start()
    group = subjects.GATEWAY_QUEUE_GROUP
    await endpoints.add(
        "keys_create", subjects.GATEWAY_KEYS_CREATE, KeyCreateRequest, keys.create, group
    )
    await endpoints.add("keys_list", subjects.GATEWAY_KEYS_LIST, KeyListRequest, keys.list, group)
    revocation = KeyRevocation(keys, bus)
    await endpoints.add(
        "keys_revoke", subjects.GATEWAY_KEYS_REVOKE, KeyRevokeRequest, revocation.revoke, group
    )

    async def on_revoked(revoked: KeyRevoked, _: Msg) -> None:
        hub = app.get(CHAT_HUB)
        if hub is not None:
            await hub.close_sockets_of_key(revoked.key_id)

    # Every replica, no queue group: each closes its own sockets.
    subscription = await bus.subscribe(subjects.GATEWAY_KEYS_REVOKED, on_revoked, KeyRevoked)
    yield
    await subscription.unsubscribe()
    await endpoints.stop(grace=5)
