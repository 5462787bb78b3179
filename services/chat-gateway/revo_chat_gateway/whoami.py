"""`GET /v1/whoami`: who the gateway takes the caller for (tenant, role, how)."""

from __future__ import annotations

import msgspec
from aiohttp import web

from revo_chat_gateway.auth import principal_of
from revo_contracts.gateway_http import Whoami


async def whoami(request: web.Request) -> web.Response:
    principal = principal_of(request)
    who = Whoami(tenant=principal.tenant, role=principal.role, via=principal.via)
    return web.json_response(msgspec.to_builtins(who))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/whoami", whoami)
