"""A server span per HTTP request, continuing the caller's W3C trace (`traceparent`), so one
trace runs from the client through the gateway, the run and its model calls; and the
request's count and duration in /metrics."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode

from revo_chat_gateway import metrics
from revo_core.tracing import extract

_tracer = trace.get_tracer("revo.chat_gateway")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
UNTRACED = ("/healthz", "/readyz", "/metrics")


@web.middleware
async def tracing_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path in UNTRACED:
        return await handler(request)
    route = request.match_info.route.resource
    template = route.canonical if route is not None else request.path
    with _tracer.start_as_current_span(
        f"{request.method} {template}",
        context=extract(dict(request.headers)),
        kind=SpanKind.SERVER,
        attributes={
            "http.request.method": request.method,
            "url.path": request.path,
            "http.route": template,
        },
    ) as span:
        started = time.perf_counter()
        response = await handler(request)
        span.set_attribute("http.response.status_code", response.status)
        if response.status >= 500:
            span.set_status(StatusCode.ERROR)
        metrics.HTTP_REQUESTS.labels(template, request.method, str(response.status)).inc()
        metrics.HTTP_SECONDS.labels(template).observe(time.perf_counter() - started)
        return response
