"""Errors as HTTP responses, in OpenAI's shape (`{"error": {message, type, code}}`) so the
official clients raise their usual typed exceptions for them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from revo_core.db import DATABASE_AWAY
from revo_core.errors import ServiceError
from revo_core.logging import get_logger
from revo_core.tracing import current_ids

log = get_logger("revo.chat_gateway.errors")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# The contract's error codes and the HTTP status each maps to.
_STATUS = {
    "invalid_request": 400,
    "unauthorized": 401,
    "forbidden": 403,
    "not_found": 404,
    "budget_exceeded": 402,
    "rate_limited": 429,
    "overloaded": 503,
    "upstream_error": 502,
    "timeout": 504,
    "internal": 500,
}


def json_error(
    status: int, message: str, code: str, headers: dict[str, str] | None = None
) -> web.Response:
    body = {"error": {"message": message, "type": code, "code": code}}
    return web.json_response(body, status=status, headers=headers)


def from_service_error(error: ServiceError) -> web.Response:
    code = str(error.code)
    if code == "internal":
        # Another service's bug: its words are for its log, not for our client.
        return internal_error()
    return json_error(_STATUS.get(code, 500), error.message, code)


def internal_error() -> web.Response:
    """A generic 500 naming the trace, so an operator finds the logged cause from it."""
    trace_id, _ = current_ids()
    where = f" (trace {trace_id})" if trace_id else ""
    return json_error(500, f"internal error{where}; the gateway logged the cause", "internal")


# aiohttp's own refusals (no route, wrong method, body too large, ...) as a contract code.
_HTTP_CODE = {401: "unauthorized", 403: "forbidden", 404: "not_found", 429: "rate_limited"}
# Headers of aiohttp's refusals a client needs (405 names the methods allowed).
_KEPT_HEADERS = ("Allow", "Retry-After")


def from_http_exception(exc: web.HTTPException) -> web.Response:
    code = _HTTP_CODE.get(exc.status, "invalid_request" if exc.status < 500 else "internal")
    headers = {name: exc.headers[name] for name in _KEPT_HEADERS if name in exc.headers}
    return json_error(exc.status, exc.text or exc.reason, code, headers)


# Set once a response's headers went out (a stream began): no other answer can follow.
_ANSWER_BEGAN: web.RequestKey[bool] = web.RequestKey("answer_began", bool)


async def mark_answer_began(request: web.Request, _: web.StreamResponse) -> None:
    """`on_response_prepare` signal: the answer's headers are going out now."""
    request[_ANSWER_BEGAN] = True


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error answered in OpenAI's shape; an unexpected exception is logged with its
    trace and answered as a generic `internal`: no exception text reaches a client."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return from_http_exception(exc)
    except DATABASE_AWAY as exc:
        if request.get(_ANSWER_BEGAN):
            raise
        # Postgres restarting (seen under bench/chaos.py): the client may retry, as for 429.
        log.warning("database unavailable", path=request.path, error=exc.__class__.__name__)
        return json_error(
            503, "a database this service needs is unavailable; retry shortly", "overloaded",
            {"Retry-After": "2"},
        )  # fmt: skip
    except Exception:
        if request.get(_ANSWER_BEGAN):
            # A second answer would be written into the first one's body: aiohttp closes
            # the connection instead, and the client sees a stream cut short.
            raise
        log.exception("request failed", method=request.method, path=request.path)
        return internal_error()


class HttpError(Exception):
    """Raised by handlers; the middleware turns it into `json_error`."""

    def __init__(
        self, status: int, message: str, code: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = headers

    def response(self) -> web.Response:
        return json_error(self.status, self.message, self.code, self.headers)
