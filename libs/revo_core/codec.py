"""JSON encoding and validated decoding of contract Structs, with codecs built once."""

from __future__ import annotations

import functools
import re
from typing import Any, TypeVar

import msgspec

from revo_core.errors import InvalidRequest

T = TypeVar("T")

_encoder = msgspec.json.Encoder()


def encode(message: Any) -> bytes:
    return _encoder.encode(message)


# What a consumer that decodes with msgspec itself must treat as a malformed message: its
# errors, and RecursionError, raised where nesting goes deeper than Python's stack.
UNREADABLE: tuple[type[Exception], ...] = (msgspec.DecodeError, RecursionError)


@functools.cache
def _decoder(kind: Any) -> msgspec.json.Decoder:
    return msgspec.json.Decoder(kind)


def decode(data: bytes, kind: type[T]) -> T:
    """Decode and validate; a bad payload raises InvalidRequest naming the field.

    msgspec's messages already carry the JSON path (`... - at `$.max_tokens``), which is
    what a caller needs to fix the request; we also lift the path into `details.field`.
    """
    try:
        return _decoder(kind).decode(data)
    except msgspec.ValidationError as exc:
        raise InvalidRequest(str(exc), {"field": _field_of(str(exc))}) from None
    except msgspec.DecodeError as exc:
        raise InvalidRequest(f"malformed JSON: {exc}") from None
    except RecursionError:
        # msgspec decodes nesting by recursion and stops where Python's stack would end:
        # the sender's fault, like any malformed JSON.
        raise InvalidRequest("malformed JSON: nested too deep") from None


_MISSING = re.compile(r"missing required field `([^`]+)`")
_AT = re.compile(r"at `\$\.?([^`]*)`")


def _field_of(message: str) -> str | None:
    """The offending field as a dotted path: `max_tokens`, `messages[0].role`."""
    at = _AT.search(message)
    path = at.group(1) if at else ""
    missing = _MISSING.search(message)
    if missing:
        path = f"{path}.{missing.group(1)}" if path else missing.group(1)
    return path or None
