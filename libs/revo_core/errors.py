"""Every error revo raises on purpose, in one place.

A `ServiceError` raised in an endpoint handler becomes an error reply (nats micro
headers + an `Error` body); the caller's bus helper turns that reply back into the same
exception class, so `except NotFound` reads the same on both sides of the wire.
"""

from __future__ import annotations

from typing import Any, ClassVar

from revo_contracts.errors import Error, ErrorCode


class RevoError(Exception):
    """Base of every revo error."""


class BusUnavailable(RevoError):
    """NATS cannot be reached (at connect time, or no responders for a subject)."""


class BusUnauthorized(BusUnavailable):
    """NATS refused the connection's credentials (none given, wrong, expired or revoked)."""


class ServiceError(RevoError):
    """An error with a contract code; raised by handlers, re-raised at callers."""

    code: ClassVar[ErrorCode] = ErrorCode.INTERNAL

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}

    def to_error(self) -> Error:
        return Error(code=self.code, message=self.message, details=self.details)

    def __str__(self) -> str:
        return f"{self.code.value}: {self.message}"


class InvalidRequest(ServiceError):
    code = ErrorCode.INVALID_REQUEST


class Unauthorized(ServiceError):
    code = ErrorCode.UNAUTHORIZED


class Forbidden(ServiceError):
    code = ErrorCode.FORBIDDEN


class NotFound(ServiceError):
    code = ErrorCode.NOT_FOUND


class BudgetExceeded(ServiceError):
    code = ErrorCode.BUDGET_EXCEEDED


class Overloaded(ServiceError):
    code = ErrorCode.OVERLOADED


class UpstreamError(ServiceError):
    code = ErrorCode.UPSTREAM_ERROR


class RequestTimeout(ServiceError):
    code = ErrorCode.TIMEOUT


class InternalError(ServiceError):
    code = ErrorCode.INTERNAL


_BY_CODE: dict[ErrorCode, type[ServiceError]] = {
    cls.code: cls
    for cls in (
        InvalidRequest,
        Unauthorized,
        Forbidden,
        NotFound,
        BudgetExceeded,
        Overloaded,
        UpstreamError,
        RequestTimeout,
        InternalError,
    )
}


def error_from_contract(error: Error) -> ServiceError:
    """Rebuild the typed exception a remote handler raised."""
    return _BY_CODE[error.code](error.message, error.details)


def error_from_code(code: str, message: str) -> ServiceError:
    """Used when only the headers survived (no decodable body)."""
    try:
        cls = _BY_CODE[ErrorCode(code)]
    except ValueError:
        cls = InternalError
    return cls(message)
