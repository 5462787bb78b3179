"""Roles: the permissions table walked over a running gateway, route by route and role by
role, and action by action on the chat socket; the docs show the same table."""

from __future__ import annotations

import asyncio
import re
import uuid
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from gateway_testkit import base_url, hs256_token, http, scripted_default

from revo_chat_gateway import permissions
from revo_chat_gateway.app import create_app
from revo_chat_gateway.settings import GatewaySettings
from revo_core.testing.fixtures import create_api_key
from revo_core.testing.scripted_model import Script, text

DOCS = Path(__file__).parents[3] / "docs" / "services" / "chat-gateway.md"
ROLES = permissions.ROLES

# What each route is asked in the walk, and what it answers a role allowed it: a status
# other than 401/403 shows the request got past the role check into the handler.
REQUESTS: dict[tuple[str, str], tuple[str, dict | None, int]] = {
    ("GET", "/v1/whoami"): ("/v1/whoami", None, 200),
    ("GET", "/v1/models"): ("/v1/models", None, 200),
    ("POST", "/v1/chat/completions"): ("/v1/chat/completions", {}, 400),  # no messages
    ("GET", "/v1/runs"): ("/v1/runs", None, 200),
    ("GET", "/v1/runs/{run_id}"): ("/v1/runs/no-such-run", None, 404),
    ("POST", "/v1/runs/{run_id}/cancel"): ("/v1/runs/no-such-run/cancel", None, 404),
    ("GET", "/v1/sessions"): ("/v1/sessions", None, 200),
    ("GET", "/v1/costs"): ("/v1/costs", None, 200),
    ("GET", "/v1/ws"): ("/v1/ws", None, 400),  # a plain GET, not an upgrade
    ("GET", "/v1/keys"): ("/v1/keys", None, 200),
    ("POST", "/v1/keys/{key_id}/revoke"): ("/v1/keys/0123456789abcdef/revoke", None, 404),
    ("GET", "/v1/audit"): ("/v1/audit", None, 200),
    ("POST", "/v1/ci/events"): ("/v1/ci/events", {}, 400),  # no status
    ("GET", "/"): ("/", None, 200),
    ("GET", "/static/{name}"): ("/static/app.js", None, 200),
    ("GET", "/openapi.json"): ("/openapi.json", None, 200),
    ("GET", "/healthz"): ("/healthz", None, 200),
    ("GET", "/readyz"): ("/readyz", None, 200),
    ("GET", "/metrics"): ("/metrics", None, 200),
}


@pytest.fixture(scope="module")
def tenant() -> str:
    return f"t{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def keys(scripted_gateway, scripted_bus, tenant) -> dict[str, str]:
    return {role: await create_api_key(scripted_bus, tenant, role) for role in ROLES}


def test_every_route_of_the_gateway_has_a_rule_and_a_request_in_this_walk():
    app = create_app(GatewaySettings(database_url="postgresql://unused/db"))

    assert permissions.routes_without_a_rule(app) == []
    assert set(REQUESTS) == set(permissions.ROUTES), "walk every rule: add it to REQUESTS"


def test_the_docs_table_is_the_code_s_table():
    documented = _docs_table("## Roles", ROLES)
    in_code = {
        route: {role: _allowed(rule, role) for role in ROLES}
        for (method, route), rule in permissions.ROUTES.items()
        if rule != permissions.PUBLIC
        for route in [f"{method} {route}"]
    }
    in_code.update(
        {
            f"ws {action}": {role: role in rule for role in ROLES}
            for action, rule in permissions.WS_ACTIONS.items()
        }
    )
    assert documented == in_code


async def test_every_route_answers_every_role_as_the_docs_table_says(
    scripted_gateway, scripted_ledger, keys
):
    documented = _docs_table("## Roles", ROLES)
    url = base_url(scripted_gateway)
    _, _, openapi = await asyncio.to_thread(http, "GET", f"{url}/openapi.json")
    for (method, route), rule in permissions.ROUTES.items():
        path, body, allowed_status = REQUESTS[(method, route)]
        for role in ROLES:
            status, _, answer = await asyncio.to_thread(http, method, url + path, keys[role], body)
            said = (method, route, role, status, answer)
            if rule == permissions.PUBLIC or documented[f"{method} {route}"][role]:
                assert status == allowed_status, said
            else:
                assert status == 403, said
                assert answer["error"]["code"] == "forbidden", said
                assert answer["error"]["type"] == "forbidden", said
                assert f"role {role!r} may not {method} {path}" in answer["error"]["message"]
                declared = openapi["paths"][route][method.lower()]
                assert "403" in declared["responses"], said
                assert role not in declared["x-revo-roles"], said


async def test_public_routes_need_no_credentials(scripted_gateway):
    url = base_url(scripted_gateway)
    for (method, route), rule in permissions.ROUTES.items():
        if rule == permissions.PUBLIC:
            path, body, allowed_status = REQUESTS[(method, route)]
            status, _, _ = await asyncio.to_thread(http, method, url + path, None, body)
            assert status == allowed_status, (route, status)


async def test_a_token_s_role_is_held_to_the_same_table(scripted_gateway):
    url = base_url(scripted_gateway)
    viewer = hs256_token(role="viewer", sub="viewer-1")
    ci = hs256_token(role="ci", sub="ci-1")

    status, _, answer = await asyncio.to_thread(
        http, "POST", f"{url}/v1/chat/completions", viewer, {}
    )
    assert status == 403 and answer["error"]["code"] == "forbidden"
    status, _, answer = await asyncio.to_thread(http, "GET", f"{url}/v1/runs", ci)
    assert status == 403 and answer["error"]["code"] == "forbidden"
    status, _, answer = await asyncio.to_thread(http, "GET", f"{url}/v1/whoami", ci)
    assert status == 200 and answer["role"] == "ci"
    status, _, answer = await asyncio.to_thread(
        http, "GET", f"{url}/v1/whoami", hs256_token(role="root")
    )
    assert status == 401 and "role 'root'" in answer["error"]["message"]


async def test_every_socket_action_answers_every_role_as_the_docs_table_says(
    scripted_gateway, scripted_model, keys, postgres, tenant
):
    documented = _docs_table("## Roles", ROLES)
    # Each role gets a session of its own to join (a viewer cannot open one).
    own_sessions = {role: await _own_session(postgres, tenant, keys[role]) for role in ROLES}
    with scripted_default(scripted_model, Script([text("hi")])):
        async with aiohttp.ClientSession() as client:
            for role in ROLES:
                url = _ws_url(scripted_gateway, keys[role])
                if not documented["GET /v1/ws"][role]:
                    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                        await client.ws_connect(url)
                    assert refused.value.status == 403
                    continue
                async with client.ws_connect(url) as ws:
                    allowed = {a: documented[f"ws {a}"][role] for a in permissions.WS_ACTIONS}
                    await _walk_socket_actions(ws, role, own_sessions[role], allowed)


async def _walk_socket_actions(ws, role: str, own_session: str, allowed: dict) -> None:
    frames = {
        "ping": {"type": "ping"},
        "hello": {"type": "hello", "session_id": own_session},
        "hello_new": {"type": "hello"},
        "message": {"type": "message", "content": "hi"},
        "cancel": {"type": "cancel", "run_id": "no-such-run"},
    }
    assert set(frames) == set(permissions.WS_ACTIONS), "walk every action: add its frame"
    for action, frame in frames.items():
        await ws.send_json(frame)
        async with asyncio.timeout(15):
            answer = await ws.receive_json()
        said = (role, action, answer)
        if allowed[action]:
            assert answer.get("code") != "forbidden", said
            expected = {
                "ping": "pong",
                "hello": "session",
                "hello_new": "session",
                "message": "item",
                "cancel": "error",  # not_found: the session has no such run
            }[action]
            assert answer["type"] == expected, said
            if action == "message":
                await _until_answered(ws)
        else:
            assert answer == {
                "type": "error",
                "code": "forbidden",
                "message": f"role {role!r} may not {action} on the chat socket",
            }, said


async def _until_answered(ws) -> None:
    async with asyncio.timeout(15):
        while True:
            frame = await ws.receive_json()
            if frame["type"] == "item" and frame["kind"] == "assistant":
                return


async def _own_session(postgres, tenant: str, key: str) -> str:
    """A session of the key's user, stored as the gateway stores one."""
    session_id = f"s{uuid.uuid4().hex[:24]}"
    key_id = key.split("_")[1]
    conn = await asyncpg.connect(postgres.dsn)
    try:
        await conn.execute(
            "INSERT INTO gateway.sessions (session_id, tenant, owner) VALUES ($1, $2, $3)",
            session_id,
            tenant,
            f"api_key:{key_id}",
        )
    finally:
        await conn.close()
    return session_id


def _ws_url(gateway, key: str) -> str:
    return base_url(gateway).replace("http://", "ws://") + f"/v1/ws?token={key}"


def _allowed(rule: permissions.Rule, role: str) -> bool:
    return rule == permissions.PUBLIC or role in rule


def _docs_table(heading: str, roles: tuple[str, ...]) -> dict[str, dict[str, bool]]:
    """The first table under `heading`: `| what | admin | member | ... |`, ✓ or blank."""
    section = DOCS.read_text().split(heading + "\n", 1)[1].splitlines()
    start = next(i for i, line in enumerate(section) if line.startswith("|"))
    lines = []
    for line in section[start:]:
        if not line.startswith("|"):
            break
        lines.append(line)
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    assert tuple(header[1:]) == roles, header
    table = {}
    for line in lines[2:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        what = re.sub(r"`", "", cells[0])
        table[what] = {role: cell == "✓" for role, cell in zip(roles, cells[1:], strict=True)}
    return table


async def test_an_unknown_path_is_404_and_under_v1_only_after_credentials(scripted_gateway, keys):
    url = base_url(scripted_gateway)

    anonymous_v1 = await asyncio.to_thread(http, "GET", f"{url}/v1/nothing-here", None)
    known_v1 = await asyncio.to_thread(http, "GET", f"{url}/v1/nothing-here", keys["viewer"])
    elsewhere = await asyncio.to_thread(http, "GET", f"{url}/nothing-here", None)
    head = await asyncio.to_thread(http, "HEAD", f"{url}/v1/sessions", keys["viewer"])
    wrong_method = await asyncio.to_thread(http, "DELETE", f"{url}/v1/sessions", keys["viewer"])

    assert anonymous_v1[0] == 401
    assert known_v1[0] == 404
    assert elsewhere[0] == 404
    assert head[0] == 200  # HEAD follows GET's rule
    assert wrong_method[0] == 405
