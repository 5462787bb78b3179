"""`GET /v1/audit`: the tenant's audit log for its admins (permissions.py), newest first.

The tenant comes from the credentials, never from the query; operators read every tenant's
with `revo audit` (`gateway.audit.list`). Query: `since` (7d, 12h, 2026-11-01 or a unix
time), `action` (one of the contract's), `limit` (1-1000, default 100).
"""

from __future__ import annotations

import math

import msgspec
from aiohttp import web

from revo_chat_gateway.audit_log import AUDIT_KEEPER
from revo_chat_gateway.auth import principal_of
from revo_chat_gateway.http_errors import HttpError
from revo_contracts.audit import AuditListRequest
from revo_core.when import parse_when


async def list_tenant_audit(request: web.Request) -> web.Response:
    listing = _listing(request.query, principal_of(request).tenant)
    listed = await request.app[AUDIT_KEEPER].list(listing)
    return web.json_response(msgspec.to_builtins(listed))


def _listing(query, tenant: str) -> AuditListRequest:
    fields: dict[str, object] = {"tenant": tenant}
    try:
        if query.get("since"):
            since = parse_when(query["since"])
            if since is None or not math.isfinite(since):
                raise ValueError("since must be a time")
            fields["since"] = since
        if query.get("action"):
            fields["action"] = query["action"]
        if query.get("limit"):
            fields["limit"] = int(query["limit"])
        return msgspec.convert(fields, AuditListRequest)
    except (ValueError, msgspec.ValidationError) as exc:
        raise HttpError(400, f"bad query: {exc}", "invalid_request") from None


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/audit", list_tenant_audit)
