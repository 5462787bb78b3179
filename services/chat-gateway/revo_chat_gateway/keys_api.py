"""A tenant's admins manage its API keys over HTTP: `GET /v1/keys`, `POST
/v1/keys/{key_id}/revoke` (admins only: permissions.py).

The tenant comes from the credentials: another tenant's key reads as absent (404). A
revocation goes the way an operator's does (KeyAdmin: every replica refuses the key, its
sockets close, the audit log names the admin who did it). Creating keys stays with
operators (`revo keys create`).
"""

from __future__ import annotations

import msgspec
from aiohttp import web

from revo_chat_gateway.auth import principal_of
from revo_chat_gateway.http_errors import HttpError
from revo_chat_gateway.key_admin import KEY_ADMIN
from revo_chat_gateway.keys import audit_actor
from revo_contracts.gateway import KeyListRequest, KeyRevokeRequest


async def list_tenant_keys(request: web.Request) -> web.Response:
    include_revoked = request.query.get("all", "false")
    if include_revoked not in ("true", "false"):
        raise HttpError(400, "all must be true or false", "invalid_request")
    listing = KeyListRequest(
        tenant=principal_of(request).tenant, include_revoked=include_revoked == "true"
    )
    listed = await request.app[KEY_ADMIN].keys.list(listing)
    return web.json_response(msgspec.to_builtins(listed))


async def revoke_tenant_key(request: web.Request) -> web.Response:
    key_id = request.match_info["key_id"]
    principal = principal_of(request)
    try:
        revoke = msgspec.convert({"key_id": key_id}, KeyRevokeRequest)
    except msgspec.ValidationError:
        raise HttpError(404, f"no API key {key_id!r}", "not_found") from None
    revoked = await request.app[KEY_ADMIN].revoke(
        revoke, tenant=principal.tenant, actor=audit_actor(principal)
    )
    return web.json_response(msgspec.to_builtins(revoked))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/keys", list_tenant_keys)
    app.router.add_post("/v1/keys/{key_id}/revoke", revoke_tenant_key)
