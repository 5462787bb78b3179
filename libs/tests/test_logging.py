"""Logs: one JSON object per line, with the service, the trace ids, and no secrets."""

from __future__ import annotations

import io
import json
import logging

import pytest
import structlog
from opentelemetry import trace

from revo_core.logging import configure_logging, get_logger


@pytest.fixture
def log_stream():
    stream = io.StringIO()
    configure_logging("unit", json=True, stream=stream)
    yield stream
    # Leave no global logging config pointing at this test's stream.
    structlog.reset_defaults()
    logging.basicConfig(force=True)


def last_line(stream: io.StringIO) -> dict:
    return json.loads(stream.getvalue().strip().splitlines()[-1])


def test_a_log_line_inside_a_span_carries_service_and_trace_ids(log_stream):
    with trace.get_tracer("t").start_as_current_span("work") as span:
        get_logger("t").info("did work", tenant="acme", prompt_tokens=12, api_key="sk-123")
    line = last_line(log_stream)

    assert line["service"] == "unit" and line["event"] == "did work"
    assert line["trace_id"] == format(span.get_span_context().trace_id, "032x")
    assert line["tenant"] == "acme" and line["prompt_tokens"] == 12
    assert line["api_key"] == "[redacted]"


def test_library_warnings_through_stdlib_logging_are_json_too(log_stream):
    logging.getLogger("some.library").warning("disk %s", "full")
    line = last_line(log_stream)

    assert line["event"] == "disk full"
    assert line["service"] == "unit" and line["logger"] == "some.library"
