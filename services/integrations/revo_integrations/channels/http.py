"""One HTTP call to a destination, as a client span of the notification's trace.

The span is named after the route template (`POST /repos/{owner}/{repo}/check-runs`), never
the URL itself: a Slack incoming-webhook URL is a secret.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import msgspec
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, StatusCode

from revo_integrations.channels import DeliveryContext, DeliveryFailed, failed_status, retry_after_s

_tracer = trace.get_tracer("revo.integrations.notify")


@dataclass
class Answer:
    status: int
    headers: Mapping[str, str]
    body: Any  # decoded JSON, or the text when it is not JSON

    def field(self, name: str) -> Any:
        return self.body.get(name) if isinstance(self.body, dict) else None


@contextmanager
def client_span(method: str, route: str, url: str) -> Iterator[Span]:
    parts = urlsplit(url)
    attributes = {
        "http.request.method": method,
        "http.route": route,
        "server.address": parts.hostname or "",
        "server.port": parts.port or (443 if parts.scheme == "https" else 80),
    }
    with _tracer.start_as_current_span(
        f"{method} {route}", kind=SpanKind.CLIENT, attributes=attributes
    ) as span:
        yield span


async def call(
    ctx: DeliveryContext,
    method: str,
    url: str,
    route: str,
    *,
    json: Any = None,
    data: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    auth: aiohttp.BasicAuth | None = None,
    ok_statuses: tuple[int, ...] = (),
) -> Answer:
    """The destination's answer; raises DeliveryFailed for a network error or a status
    outside 2xx (and `ok_statuses`)."""
    body = msgspec.json.encode(json) if json is not None else data
    sent = {"Content-Type": "application/json", **(headers or {})} if body is not None else headers
    with client_span(method, route, url) as span:
        try:
            async with ctx.session.request(
                method, url, data=body, headers=sent, auth=auth
            ) as response:
                raw = await response.read()
                answer = Answer(response.status, response.headers, _decoded(raw))
        except (TimeoutError, aiohttp.ClientError) as exc:
            span.set_status(StatusCode.ERROR, type(exc).__name__)
            reason = "timeout" if isinstance(exc, TimeoutError) else "network"
            raise DeliveryFailed(
                f"{method} {route}: {type(exc).__name__} {exc}", reason=reason
            ) from None
        span.set_attribute("http.response.status_code", answer.status)
        ctx.answered(answer.status, _short(answer.body))
        if 200 <= answer.status < 300 or answer.status in ok_statuses:
            return answer
        span.set_status(StatusCode.ERROR, f"HTTP {answer.status}")
        raise failed_status(
            answer.status,
            f"{method} {route}: {_short(answer.body)}",
            retry_after_s(answer.headers.get("Retry-After")),
        )


def _decoded(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return raw.decode(errors="replace")


def _short(body: Any) -> str:
    text = body if isinstance(body, str) else msgspec.json.encode(body).decode()
    return text[:300]


def base(url: str) -> str:
    return url.rstrip("/")


__all__ = ["Answer", "DeliveryFailed", "base", "call", "client_span"]
