"""structlog, configured once: JSON lines on stdout (console on a TTY), with trace ids.

Every line carries `service`, and `trace_id`/`span_id` when a span is active; callers
bind `tenant`, `run_id`, `request_id` with structlog.contextvars where they know them.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import structlog

from revo_core.tracing import current_ids

_SECRET_KEYS = {"password", "secret", "token", "api_key", "authorization", "dsn"}
_SECRET_SUFFIXES = ("_password", "_secret", "_api_key", "_dsn")


def _add_trace_ids(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    trace_id, span_id = current_ids()
    if trace_id:
        event.setdefault("trace_id", trace_id)
        event.setdefault("span_id", span_id)
    return event


def _redact_secrets(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    for key in event:
        lowered = key.lower()
        if lowered in _SECRET_KEYS or lowered.endswith(_SECRET_SUFFIXES):
            event[key] = "[redacted]"
    return event


def configure_logging(
    service: str, level: str = "INFO", json: bool | None = None, stream: TextIO | None = None
) -> None:
    stream = stream or sys.stdout
    if json is None:
        json = not stream.isatty()

    def add_service(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
        event.setdefault("service", service)
        return event

    shared = [
        structlog.contextvars.merge_contextvars,
        add_service,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _add_trace_ids,
        _redact_secrets,
    ]
    renderer = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=True,
    )
    _route_stdlib_logging(shared, renderer, stream)


def _route_stdlib_logging(shared: list[Any], renderer: Any, stream: TextIO) -> None:
    """Libraries (nats, vllm, aiohttp) log through stdlib: render their WARNING and above
    through the same processors, so the stream stays one JSON object per line."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    logging.basicConfig(handlers=[handler], level=logging.WARNING, force=True)


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)
