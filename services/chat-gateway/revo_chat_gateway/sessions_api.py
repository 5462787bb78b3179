"""`GET /v1/sessions`: the caller's chat sessions (an admin's: all of the tenant's), the most
recently active first."""

from __future__ import annotations

import re

import msgspec
from aiohttp import web

from revo_chat_gateway import permissions
from revo_chat_gateway.auth import principal_of
from revo_chat_gateway.http_errors import HttpError
from revo_chat_gateway.sessions import SessionStore, SessionSummary
from revo_contracts.gateway_http import SessionInfo, SessionList

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
_DIGITS = re.compile(r"[0-9]{1,9}")


async def list_sessions(request: web.Request) -> web.Response:
    from revo_chat_gateway.app import POOL  # app.py imports this module for its routes

    limit = _limit(request.query.get("limit"))
    store = SessionStore(request.app[POOL])
    principal = principal_of(request)
    sessions = await store.of_tenant(principal.tenant, permissions.owner_scope(principal), limit)
    listed = SessionList(data=[_as_info(s) for s in sessions])
    return web.json_response(msgspec.to_builtins(listed))


def _limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_LIMIT
    # Not str.isdigit(): it holds for "²" and for 5000 digits, which int() refuses.
    if not _DIGITS.fullmatch(raw) or not 1 <= int(raw) <= MAX_LIMIT:
        raise HttpError(
            400, f"limit must be a whole number from 1 to {MAX_LIMIT}", "invalid_request"
        )
    return int(raw)


def _as_info(session: SessionSummary) -> SessionInfo:
    return SessionInfo(
        id=session.session_id,
        title=session.title,
        created_at=session.created_at.isoformat(),
        updated_at=session.updated_at.isoformat(),
        last_seq=session.last_seq,
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/sessions", list_sessions)
