"""Who may do what: every route and every WebSocket action, mapped to the roles allowed it.

This table is the only place a role is checked. The auth middleware looks up the matched
route's rule on every request; the chat socket looks up each frame's action. A route
missing from the table is refused to everyone (and the app refuses to start with one, so a
new route without a rule fails every test). docs/services/chat-gateway.md shows the same
table; a test compares the two and another walks it over a running gateway.

What a role may *see* is narrower than what it may call: `admin` sees the whole tenant,
everyone else only what is theirs (`owner_scope`).
"""

from __future__ import annotations

from typing import Final, get_args

from aiohttp import web

from revo_chat_gateway.http_errors import HttpError
from revo_chat_gateway.keys import Principal
from revo_contracts.chat import ChatClientFrame, ChatHello
from revo_contracts.gateway import Role

ROLES: Final[tuple[str, ...]] = get_args(Role)
PUBLIC: Final = "public"  # no credentials needed at all

EVERYONE = frozenset(ROLES)
# People (not CI publishers): they read what is theirs.
READERS = frozenset({"admin", "member", "viewer"})
# Those who start and cancel runs.
CHATTERS = frozenset({"admin", "member"})
ADMINS = frozenset({"admin"})
# Those who may report a CI outcome: a CI publisher's key, and people who may start runs.
CI_PUBLISHERS = frozenset({"admin", "member", "ci"})

Rule = frozenset[str] | str

# (method, route as registered) -> the roles allowed it, or PUBLIC. HEAD follows GET.
ROUTES: Final[dict[tuple[str, str], Rule]] = {
    ("GET", "/v1/whoami"): EVERYONE,  # a CI job may check its own key
    ("GET", "/v1/models"): READERS,
    ("POST", "/v1/chat/completions"): CHATTERS,
    ("GET", "/v1/runs"): READERS,
    ("GET", "/v1/runs/{run_id}"): READERS,
    ("POST", "/v1/runs/{run_id}/cancel"): CHATTERS,
    ("GET", "/v1/sessions"): READERS,
    ("GET", "/v1/costs"): READERS,
    ("GET", "/v1/ws"): READERS,
    ("GET", "/v1/keys"): ADMINS,
    ("POST", "/v1/keys/{key_id}/revoke"): ADMINS,
    ("GET", "/v1/audit"): ADMINS,
    ("POST", "/v1/ci/events"): CI_PUBLISHERS,
    ("GET", "/"): PUBLIC,
    ("GET", "/static/{name}"): PUBLIC,
    ("GET", "/openapi.json"): PUBLIC,
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/readyz"): PUBLIC,
    ("GET", "/metrics"): PUBLIC,
}

# The chat socket's frames. `hello` joins an existing session (one the caller may see);
# `hello_new` is a hello without a session id, which opens a new one.
WS_ACTIONS: Final[dict[str, frozenset[str]]] = {
    "ping": READERS,
    "hello": READERS,
    "hello_new": CHATTERS,
    "message": CHATTERS,
    "cancel": CHATTERS,
}

_NOBODY: frozenset[str] = frozenset()


def route_rule(request: web.Request) -> Rule | None:
    """The rule of the route the request matched; None when it matched none (a 404 or 405
    follows); nobody for a route the table lacks."""
    route = request.match_info.route
    resource = route.resource
    if resource is None:
        return None
    method = "GET" if route.method == "HEAD" else route.method
    return ROUTES.get((method, resource.canonical), _NOBODY)


def require_route(rule: Rule, principal: Principal, request: web.Request) -> None:
    if rule == PUBLIC or principal.role in rule:
        return
    raise HttpError(
        403,
        f"role {principal.role!r} may not {request.method} {request.path}",
        "forbidden",
    )


def ws_action(frame: ChatClientFrame) -> str:
    if isinstance(frame, ChatHello) and frame.session_id is None:
        return "hello_new"
    return str(type(frame).__struct_config__.tag)


def ws_refusal(frame: ChatClientFrame, principal: Principal) -> str | None:
    """Why the caller may not send this frame (the error frame's message), or None."""
    action = ws_action(frame)
    if principal.role in WS_ACTIONS.get(action, _NOBODY):
        return None
    return f"role {principal.role!r} may not {action} on the chat socket"


def owner_scope(principal: Principal) -> str | None:
    """Whose sessions and runs the caller sees: None for all of the tenant's (admin),
    else only the caller's own."""
    return None if principal.role == "admin" else principal.owner


def routes_without_a_rule(app: web.Application) -> list[str]:
    missing = []
    for route in app.router.routes():
        if route.resource is None or route.method == "HEAD":
            continue
        if (route.method, route.resource.canonical) not in ROUTES:
            missing.append(f"{route.method} {route.resource.canonical}")
    return missing


async def check_every_route_has_a_rule(app: web.Application) -> None:
    """On start-up: a route added without a rule would be refused to everyone; say so
    loudly instead of serving 403s."""
    missing = routes_without_a_rule(app)
    if missing:
        raise RuntimeError(f"routes without a rule in permissions.ROUTES: {', '.join(missing)}")
