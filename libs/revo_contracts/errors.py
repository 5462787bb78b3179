"""The error contract of every request/reply endpoint (DESIGN.md §3)."""

from __future__ import annotations

import enum
from typing import Any

import msgspec


class ErrorCode(enum.StrEnum):
    INVALID_REQUEST = "invalid_request"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    BUDGET_EXCEEDED = "budget_exceeded"
    OVERLOADED = "overloaded"
    UPSTREAM_ERROR = "upstream_error"
    TIMEOUT = "timeout"
    INTERNAL = "internal"


class Error(msgspec.Struct, kw_only=True, forbid_unknown_fields=False):
    """Body of an error reply; the same code travels in `Nats-Service-Error-Code`."""

    code: ErrorCode
    message: str
    details: dict[str, Any] = {}
