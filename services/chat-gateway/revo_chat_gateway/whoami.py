"""`GET /v1/whoami`: who the gateway takes the caller for (tenant, role, how)."""

from __future__ import annotations

from aiohttp import web

from revo_chat_gateway.auth import principal_of


async def whoami(request: web.Request) -> web.Response:
    principal = principal_of(request)
    return web.json_response(
        {"tenant": principal.tenant, "role": principal.role, "via": principal.via}
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/whoami", whoami)
