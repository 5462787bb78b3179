"""`GET /openapi.json`: the gateway's HTTP API as OpenAPI 3.1, its schemas generated from
the contracts (revo_contracts.gateway_http, .runs, .chat, .ledger) so they cannot drift
from the code. A test checks that every route of the app is in it and that real answers match it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib.metadata import version
from typing import Any, get_args

import msgspec
from aiohttp import web

from revo_chat_gateway import permissions
from revo_contracts import gateway_http as http
from revo_contracts.audit import AuditAction, AuditListResponse
from revo_contracts.chat import ChatClientFrame, ChatServerFrame
from revo_contracts.gateway import KeyListResponse, KeyRevokeResponse
from revo_contracts.ledger import CostReport
from revo_contracts.runs import AgentName, RunDetail, RunListResponse, RunStatus

OPENAPI_PATH = "/openapi.json"
_REF = "#/components/schemas/{name}"


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    summary: str
    answers: type | None = None  # the 200 body
    body: type | None = None
    parameters: list[dict[str, Any]] = field(default_factory=list)
    public: bool = False
    errors: tuple[int, ...] = (401, 429)
    content_type: str = "application/json"
    description: str = ""
    # Answered as a stream too (`stream: true`): the schema of its `data:` payloads.
    streams: type | None = None
    ok_status: int = 200


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "schema": schema, "description": description}


_RUN_ID = {"name": "run_id", "in": "path", "required": True, "schema": {"type": "string"}}
_LIMIT = {"type": "integer", "minimum": 1, "maximum": 500}
_WHEN = (
    "From this UTC day: 7d, 12h, 2026-11-01 or a unix time, from 1970 through 9999; "
    "empty or absent: {default}"
)

OPERATIONS = (
    Operation("get", "/v1/whoami", "Who the credentials are: tenant, role, how", http.Whoami),
    Operation(
        "get",
        "/v1/models",
        "The agents, each as a model `revo/<agent>`",
        http.ModelList,
        errors=(401, 429, 503),
    ),
    Operation(
        "post",
        "/v1/chat/completions",
        "OpenAI's chat completion, answered by a run of an agent",
        http.ChatCompletion,
        body=http.ChatCompletionBody,
        errors=(400, 401, 404, 413, 415, 422, 429, 500, 502, 503, 504),
        description="`model` `revo/<agent>` picks the agent; any other model is the "
        "`assistant`. With `stream: true` the answer is `text/event-stream` of "
        "ChatCompletionChunk events ending with `data: [DONE]` (or with one ErrorBody event "
        "when the run fails once the stream has begun); its schema is that of the `data:` "
        "payloads in order. The run's id is in the `X-Revo-Run-Id` header; a client that "
        "goes away cancels its run.",
        streams=http.ChatCompletionChunk,
    ),
    Operation(
        "get",
        "/v1/runs",
        "The tenant's runs, newest first",
        RunListResponse,
        parameters=[
            _query("limit", _LIMIT, "At most this many (default 50)"),
            _query("status", msgspec.json.schema(RunStatus), "Only runs in this status"),
            _query("agent", msgspec.json.schema(AgentName), "Only runs of this agent"),
        ],
        errors=(400, 401, 429),
    ),
    Operation(
        "get",
        "/v1/runs/{run_id}",
        "A run with its events",
        RunDetail,
        parameters=[_RUN_ID],
        errors=(401, 404, 429),
    ),
    Operation(
        "post",
        "/v1/runs/{run_id}/cancel",
        "Cancel a run",
        http.CancelResult,
        parameters=[_RUN_ID],
        errors=(401, 404, 429),
    ),
    Operation(
        "get",
        "/v1/sessions",
        "The tenant's chat sessions, most recently active first",
        http.SessionList,
        parameters=[_query("limit", _LIMIT, "At most this many (default 50)")],
        errors=(400, 401, 429),
    ),
    Operation(
        "get",
        "/v1/costs",
        "The tenant's spend: by day, model and provider; local share; savings; top runs",
        CostReport,
        parameters=[
            _query("since", {"type": "string"}, _WHEN.format(default="30 days ago")),
            _query("until", {"type": "string"}, _WHEN.format(default="today")),
            _query("top", {"type": "integer", "minimum": 0, "maximum": 100}, "Top runs (10)"),
        ],
        errors=(400, 401, 429, 503),
    ),
    Operation(
        "get",
        "/v1/ws",
        "WebSocket chat (upgrade)",
        parameters=[
            _query(
                "token",
                {"type": "string"},
                "The API key or JWT (browsers cannot set "
                "headers on a WebSocket); or send Authorization: Bearer",
            ),
        ],
        description="JSON text frames: the client sends ChatClientFrame, the server sends "
        "ChatServerFrame (schemas below). Frames over the size limit close the socket with "
        "1009; a client that does not read is told `slow_consumer` and closed with 1008.",
    ),
    Operation(
        "get",
        "/v1/keys",
        "The tenant's API keys (admins): ids, roles, expiry, last use; never a secret",
        KeyListResponse,
        parameters=[_query("all", {"type": "boolean"}, "Revoked keys too (default false)")],
        errors=(400, 401, 429),
    ),
    Operation(
        "post",
        "/v1/keys/{key_id}/revoke",
        "Revoke one of the tenant's API keys (admins); every replica refuses it at once",
        KeyRevokeResponse,
        parameters=[{**_RUN_ID, "name": "key_id"}],
        errors=(401, 404, 429),
    ),
    Operation(
        "get",
        "/v1/audit",
        "The tenant's audit log (admins), newest first: who did what; never a secret",
        AuditListResponse,
        parameters=[
            _query("since", {"type": "string"}, _WHEN.format(default="the beginning")),
            _query("action", {"enum": list(get_args(AuditAction))}, "Only this action"),
            _query(
                "limit",
                {"type": "integer", "minimum": 1, "maximum": 1000},
                "At most this many (default 100)",
            ),
        ],
        errors=(400, 401, 429),
    ),
    Operation(
        "post",
        "/v1/ci/events",
        "Report a CI outcome (any CI; `revo publish`): stored and published as a CiEvent",
        http.CiEventAccepted,
        body=http.CiEventBody,
        errors=(400, 401, 403, 413, 415, 429, 503),
        ok_status=202,
        description="Roles admin, member and ci. The body is the CiEvent contract's fields "
        "with the job's log as text; it may be sent gzip-compressed whole "
        "(`Content-Encoding: gzip`), at most 25 MB after decompression (413 beyond). The "
        "tenant is the key's (a body naming another is refused, 403). The log is kept inline "
        "in the event when small, else in the CI_LOGS object store; the event is published "
        "to `ci.events.<tenant>.<provider>` and answered 202 once the stream has stored it. "
        "Without `event_id`, one is derived from the provider, repository, workflow id, job "
        "and job id and attempt when an id is given, so a retry is stored once "
        "(`duplicate: true`).",
    ),
    Operation("get", "/healthz", "Alive", public=True, errors=()),
    Operation(
        "get", "/readyz", "NATS connected and Postgres reachable", public=True, errors=(503,)
    ),
    Operation(
        "get", "/metrics", "Prometheus metrics", public=True, errors=(), content_type="text/plain"
    ),
    Operation("get", OPENAPI_PATH, "This document", public=True, errors=()),
    Operation("get", "/", "The web chat page", public=True, errors=(), content_type="text/html"),
)

# Described in the document but not answered as JSON: WebSocket frames.
_EXTRA_SCHEMAS = (ChatClientFrame, ChatServerFrame, http.ChatCompletionChunk, http.ErrorBody)

_ERROR_TEXT = {
    400: "Invalid request",
    415: "The body is not JSON (Content-Type), or is encoded otherwise than gzip",
    500: "The run failed or was cancelled, or an internal error (named by its trace id)",
    401: "Missing, wrong, expired or revoked credentials",
    403: "The caller's role may not call this (see x-revo-roles)",
    404: "Not found (or another tenant's)",
    413: "Body over the size limit",
    422: "The run ended on a limit or a guard",
    429: "Rate limited (see Retry-After)",
    502: "Inference failed",
    503: "A dependency is down",
    504: "The run took too long",
}


def build_document() -> dict[str, Any]:
    types = [t for op in OPERATIONS for t in (op.answers, op.body) if t is not None]
    named, components = msgspec.json.schema_components([*types, *_EXTRA_SCHEMAS], ref_template=_REF)
    schema_of = dict(zip([*types, *_EXTRA_SCHEMAS], named, strict=True))
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method] = _operation(op, schema_of)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "revo chat gateway",
            "version": version("revo"),
            "description": "The public entry of revo: chat with agents (WebSocket, "
            "OpenAI-compatible), runs, sessions and costs of the caller's tenant.",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key (`revo keys create`) or a JWT (HS256/RS256).",
                }
            },
        },
        "paths": paths,
    }


def _operation(op: Operation, schema_of: dict[type, dict[str, Any]]) -> dict[str, Any]:
    ok: dict[str, Any] = {"description": "Accepted" if op.ok_status == 202 else "OK"}
    if op.answers is not None:
        ok["content"] = {op.content_type: {"schema": schema_of[op.answers]}}
    if op.streams is not None:
        ok["content"]["text/event-stream"] = {"schema": _event_stream(schema_of[op.streams])}
    elif op.content_type != "application/json":
        ok["content"] = {op.content_type: {"schema": {"type": "string"}}}
    responses: dict[str, Any] = {str(op.ok_status): ok}
    error = {"application/json": {"schema": schema_of[http.ErrorBody]}}
    roles = _roles(op)
    refuses_some = bool(roles) and set(roles) != set(permissions.ROLES)
    errors = sorted({*op.errors, 403}) if refuses_some else op.errors
    for status in errors:
        responses[str(status)] = {"description": _ERROR_TEXT[status], "content": error}
    if op.path == "/v1/ws":
        responses = {
            "101": {"description": "Switching to the WebSocket chat"},
            "400": {"description": "Not a WebSocket upgrade", "content": error},
            "401": responses["401"],
            **({"403": responses["403"]} if "403" in responses else {}),
            "429": responses["429"],
        }
    operation: dict[str, Any] = {
        "summary": op.summary,
        "operationId": f"{op.method}_{op.path.strip('/').replace('/', '_') or 'page'}",
        "responses": responses,
    }
    if roles:
        operation["x-revo-roles"] = roles
    if op.description:
        operation["description"] = op.description
    if op.parameters:
        operation["parameters"] = op.parameters
    if op.body is not None:
        content = {"application/json": {"schema": schema_of[op.body]}}
        operation["requestBody"] = {"required": True, "content": content}
    if op.public:
        operation["security"] = []
    return operation


def _roles(op: Operation) -> list[str]:
    """The roles permissions.py allows the operation (none for a public one)."""
    rule = permissions.ROUTES.get((op.method.upper(), op.path))
    if rule is None or rule == permissions.PUBLIC:
        return []
    return [role for role in permissions.ROLES if role in rule]


def _event_stream(chunk: dict[str, Any]) -> dict[str, Any]:
    """One event of an SSE stream (OpenAPI 3.1 has the media type's schema describe each
    event, as 3.2's `itemSchema` does): its `data` is a chunk, one error, or `[DONE]`."""
    payload = {"anyOf": [chunk, {"$ref": _REF.format(name="ErrorBody")}]}
    json_data = {
        "type": "string",
        "contentMediaType": "application/json",
        "contentSchema": payload,
    }
    return {
        "type": "object",
        "properties": {"data": {"anyOf": [{"const": "[DONE]"}, json_data]}},
        "required": ["data"],
    }


async def serve_document(request: web.Request) -> web.Response:
    return web.json_response(request.app[DOCUMENT])


DOCUMENT: web.AppKey[dict] = web.AppKey("openapi_document", dict)


def add_routes(app: web.Application) -> None:
    app[DOCUMENT] = build_document()
    app.router.add_get(OPENAPI_PATH, serve_document)
