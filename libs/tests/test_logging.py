"""Logs: one JSON object per line, with the service, the trace ids, and no secrets."""

from __future__ import annotations

import json

from opentelemetry import trace

from revo_core.logging import configure_logging, get_logger


def test_a_log_line_inside_a_span_carries_service_and_trace_ids(capsys):
    configure_logging("unit", json=True)
    with trace.get_tracer("t").start_as_current_span("work") as span:
        get_logger("t").info("did work", tenant="acme", prompt_tokens=12, api_key="sk-123")
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])

    assert line["service"] == "unit" and line["event"] == "did work"
    assert line["trace_id"] == format(span.get_span_context().trace_id, "032x")
    assert line["tenant"] == "acme" and line["prompt_tokens"] == 12
    assert line["api_key"] == "[redacted]"
