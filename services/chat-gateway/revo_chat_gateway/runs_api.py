"""The REST runs API: list, read and cancel the caller's runs (an admin's: the tenant's).

`GET /v1/runs`, `GET /v1/runs/{id}`, `POST /v1/runs/{id}/cancel`. The tenant and the owner
always come from the credentials, never from the request, and another tenant's or user's
run reads as absent (404), so its existence is not revealed.
"""

from __future__ import annotations

import msgspec
from aiohttp import web

from revo_chat_gateway import permissions
from revo_chat_gateway.auth import principal_of
from revo_chat_gateway.http_errors import HttpError
from revo_chat_gateway.keys import Principal, audit_actor
from revo_contracts.gateway_http import CancelResult
from revo_contracts.runs import RunDetail, RunGetRequest, RunListRequest
from revo_core.runs import cancel_run, get_run, list_runs
from revo_core.service import BUS

# The query parameters of GET /v1/runs; anything else (`tenant`, `owner` above all) is
# ignored.
LIST_FILTERS = ("limit", "status", "agent")


async def list_tenant_runs(request: web.Request) -> web.Response:
    query = {name: request.query[name] for name in LIST_FILTERS if name in request.query}
    try:
        # strict=False: query values are strings ("10" for a limit of 10).
        filters = msgspec.convert(
            {**query, **_scope(principal_of(request))}, RunListRequest, strict=False
        )
    except msgspec.ValidationError as exc:
        raise HttpError(400, f"invalid query: {exc}", "invalid_request") from None
    # strict=False also reads `status=null` as None (every status): a value given is a filter.
    for name in query:
        if getattr(filters, name) is None:
            raise HttpError(400, f"invalid query: {name}={query[name]}", "invalid_request")
    listed = await list_runs(request.app[BUS], filters)
    return web.json_response(msgspec.to_builtins(listed))


async def read_run(request: web.Request) -> web.Response:
    detail = await tenant_run(request)
    return web.json_response(msgspec.to_builtins(detail))


async def cancel_tenant_run(request: web.Request) -> web.Response:
    detail = await tenant_run(request)  # first: a 404 for another tenant's run
    actor = audit_actor(principal_of(request))
    ack = await cancel_run(
        request.app[BUS], detail.run.run_id, "cancelled through the API", actor=actor
    )
    # No acknowledgement: no runner holds the run now (queued, or already ended).
    result = CancelResult(
        run_id=detail.run.run_id,
        accepted=bool(ack and ack.accepted),
        status=ack.status if ack else detail.run.status,
    )
    return web.json_response(msgspec.to_builtins(result))


async def tenant_run(request: web.Request) -> RunDetail:
    """The run of the path, if the caller may see it (NotFound, a 404, otherwise)."""
    run_id = request.match_info["run_id"]
    try:
        get = msgspec.convert({"run_id": run_id, **_scope(principal_of(request))}, RunGetRequest)
    except msgspec.ValidationError:
        raise HttpError(404, f"no run {run_id!r}", "not_found") from None
    return await get_run(request.app[BUS], get)


def _scope(principal: Principal) -> dict[str, str | None]:
    """The runs a caller sees: its tenant's, and only its own unless it is an admin."""
    return {"tenant": principal.tenant, "owner": permissions.owner_scope(principal)}


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/runs", list_tenant_runs)
    app.router.add_get("/v1/runs/{run_id}", read_run)
    app.router.add_post("/v1/runs/{run_id}/cancel", cancel_tenant_run)
