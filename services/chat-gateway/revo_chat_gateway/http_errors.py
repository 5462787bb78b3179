"""Errors as HTTP responses, in OpenAI's shape (`{"error": {message, type, code}}`) so the
official clients raise their usual typed exceptions for them."""

from __future__ import annotations

from aiohttp import web

from revo_core.errors import ServiceError

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
    return json_error(_STATUS.get(code, 500), error.message, code)


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
