"""OpenTelemetry for NATS hops: W3C context in message headers, messaging-convention spans.

Export goes over OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT is set (Jaeger speaks it
natively); without it spans are still created, so trace ids reach the logs.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from opentelemetry import context, propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Span, SpanKind

_tracer = trace.get_tracer("revo")


def setup_tracing(service_name: str, extra_processor: SpanProcessor | None = None) -> None:
    """Install the global tracer provider once per process."""
    if isinstance(trace.get_tracer_provider(), TracerProvider):
        return
    resource = Resource.create({"service.name": os.getenv("OTEL_SERVICE_NAME", service_name)})
    provider = TracerProvider(resource=resource)
    if os.getenv("OTEL_EXPORTER_OTLP_ENDPOINT") or os.getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    if extra_processor is not None:
        provider.add_span_processor(extra_processor)
    trace.set_tracer_provider(provider)


def shutdown_tracing() -> None:
    provider = trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):
        provider.shutdown()


def inject(headers: Mapping[str, str] | None = None, span: Span | None = None) -> dict[str, str]:
    """Headers carrying the trace context (traceparent, tracestate, baggage) of `span`,
    or of the current span."""
    carrier = dict(headers or {})
    ctx = trace.set_span_in_context(span) if span is not None else None
    propagate.inject(carrier, context=ctx)
    return carrier


def extract(headers: Mapping[str, str] | None) -> context.Context:
    return propagate.extract(dict(headers or {}))


def _attributes(subject: str, operation: str) -> dict[str, str]:
    return {
        "messaging.system": "nats",
        "messaging.destination.name": subject,
        "messaging.operation.type": operation,
    }


@contextmanager
def publish_span(subject: str, kind: SpanKind = SpanKind.PRODUCER) -> Iterator[Span]:
    """Span of a sending side (`<subject> publish`); its context goes into the headers."""
    with _tracer.start_as_current_span(
        f"{subject} publish", kind=kind, attributes=_attributes(subject, "publish")
    ) as span:
        yield span


def start_client_span(subject: str) -> Span:
    """A `<subject> publish` span that outlives one block (a streamed request); the
    caller ends it. Not made current: it may end in another task than it began."""
    return _tracer.start_span(
        f"{subject} publish", kind=SpanKind.CLIENT, attributes=_attributes(subject, "publish")
    )


@contextmanager
def process_span(
    subject: str, headers: Mapping[str, str] | None, kind: SpanKind = SpanKind.CONSUMER
) -> Iterator[Span]:
    """Span of a receiving side (`<subject> process`), child of the sender's span."""
    parent = extract(headers)
    with _tracer.start_as_current_span(
        f"{subject} process",
        context=parent,
        kind=kind,
        attributes=_attributes(subject, "process"),
    ) as span:
        yield span


def current_ids() -> tuple[str | None, str | None]:
    """(trace_id, span_id) of the current span in hex, for log lines."""
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None, None
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")


@contextmanager
def internal_span(
    name: str, attributes: Mapping[str, str | int | float | bool] | None = None
) -> Iterator[Span]:
    """A span of work inside a service (a run, a tool call), child of the current span."""
    with _tracer.start_as_current_span(
        name, kind=SpanKind.INTERNAL, attributes=dict(attributes or {})
    ) as span:
        yield span
