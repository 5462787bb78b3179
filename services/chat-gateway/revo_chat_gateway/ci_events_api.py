"""`POST /v1/ci/events`: a CI outcome from any CI (Jenkins, Buildkite, a shell step,
`revo publish`), for a key with the `ci` role or higher.

The body is the CiEvent contract's fields with the log as text (gzip accepted: the whole
body, `Content-Encoding: gzip`). The gateway stores the log (inline in the event when small,
else gzip in the CI_LOGS object store), publishes the event to `ci.events.<tenant>.<provider>`
(stream CI_EVENTS), waits for the stream's ack and answers 202. The tenant is the key's;
a body naming another tenant is refused (403), never published.

The body cap (25 MB) counts the bytes after decompression, as they are decompressed: aiohttp
inflates a gzip body a bounded step at a time as it is read, so a gzip bomb is refused after
reading at most the cap, never inflated whole.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import AsyncIterator

import msgspec
from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError
from nats.errors import TimeoutError as NatsTimeout
from nats.js.errors import NoStreamResponseError

from revo_chat_gateway.auth import principal_of
from revo_chat_gateway.http_errors import HttpError
from revo_chat_gateway.metrics import CI_EVENTS_RECEIVED, CI_LOG_BYTES
from revo_contracts import subjects
from revo_contracts.ci import CiEvent, CiLog
from revo_contracts.gateway_http import CiEventAccepted, CiEventBody, CiLogStored
from revo_contracts.streams import CI_EVENTS
from revo_core.ci_logs import store_log
from revo_core.jetstream import ensure_streams
from revo_core.logging import get_logger
from revo_core.service import BUS, SETTINGS

log = get_logger("revo.chat_gateway.ci_events")
ROUTE = "/v1/ci/events"
# What a body may be encoded as; aiohttp inflates gzip as it is read.
_ENCODINGS = ("", "identity", "gzip", "x-gzip")
_JSON_TYPES = ("application/json", "application/octet-stream")
_READ_CHUNK = 256 * 1024
# Decoding a body this large off the event loop, so other requests keep being answered.
_DECODE_IN_THREAD_BYTES = 1024 * 1024
_decoder = msgspec.json.Decoder(CiEventBody)
# The body's fields the event takes as they are (the gateway fills event_id, tenant, log).
_EVENT_FIELDS = tuple(
    name for name in CiEventBody.__struct_fields__ if name not in ("log", "event_id", "tenant")
)


async def post_ci_event(request: web.Request) -> web.StreamResponse:
    principal = principal_of(request)
    try:
        body = await read_event_body(request)
        if body.tenant is not None and body.tenant != principal.tenant:
            raise HttpError(
                403,
                f"the body's tenant {body.tenant!r} is not the key's tenant "
                f"{principal.tenant!r}; leave `tenant` out",
                "forbidden",
            )
        accepted = await publish_event(request, principal.tenant, body)
    except HttpError as refused:
        CI_EVENTS_RECEIVED.labels("refused", str(refused.status)).inc()
        if encoding_of(request) not in ("", "identity") and not request.content.is_eof():
            return await answer_and_close(request, refused)
        raise
    CI_EVENTS_RECEIVED.labels("duplicate" if accepted.duplicate else "accepted", "202").inc()
    log.info(
        "ci event accepted",
        tenant=principal.tenant,
        event_id=accepted.event_id,
        provider=body.provider,
        status=body.status,
        duplicate=accepted.duplicate,
    )
    return web.json_response(msgspec.to_builtins(accepted), status=202)


async def read_event_body(request: web.Request) -> CiEventBody:
    refuse_unless_json(request)
    cap: int = request.app[SETTINGS].ci_event_max_bytes  # type: ignore[attr-defined]
    raw = await read_capped(request, cap)
    if len(raw) < _DECODE_IN_THREAD_BYTES:
        return decode_body(raw)
    return await asyncio.to_thread(decode_body, raw)


def refuse_unless_json(request: web.Request) -> None:
    kind = request.content_type
    if kind not in _JSON_TYPES and not kind.endswith("+json"):
        raise HttpError(415, f"the body must be application/json, not {kind}", "invalid_request")
    encoding = encoding_of(request)
    # Only gzip is documented: deflate is refused here, and aiohttp itself answers br and
    # zstd with a plain 400 before this handler (their libraries are not installed).
    if encoding not in _ENCODINGS:
        raise HttpError(
            415,
            f"Content-Encoding {encoding!r} is not accepted: send the body as is, or gzip",
            "invalid_request",
        )


async def read_capped(request: web.Request, cap: int) -> bytes:
    """The body, decompressed, refused (413) as soon as it passes `cap` bytes."""
    if request.content_length is not None and request.content_length > cap:
        raise too_large(cap)
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.content.iter_chunked(_READ_CHUNK):
            size += len(chunk)
            if size > cap:
                raise too_large(cap)
            chunks.append(chunk)
    except RequestPayloadError as exc:
        # aiohttp's refusal of a body it could not inflate (not gzip, or cut short).
        reason = " ".join(str(exc).split())
        raise HttpError(400, f"cannot read the body: {reason}", "invalid_request") from None
    return b"".join(chunks)


def encoding_of(request: web.Request) -> str:
    return request.headers.get("Content-Encoding", "").strip().lower()


async def answer_and_close(request: web.Request, refused: HttpError) -> web.StreamResponse:
    """The refusal, then the connection closed: aiohttp would otherwise read (and so
    inflate) the rest of a refused compressed body before the next request, for up to
    10 s: a gzip bomb would cost that CPU after its refusal."""
    response = refused.response()
    response.force_close()
    await response.prepare(request)
    await response.write_eof()
    request.protocol.force_close()
    return response


def too_large(cap: int) -> HttpError:
    return HttpError(
        413,
        f"the body is over {cap} bytes (after decompression); `revo publish` cuts a long "
        "log to fit, keeping its head and tail",
        "invalid_request",
    )


def decode_body(raw: bytes) -> CiEventBody:
    try:
        try:
            return _decoder.decode(raw)
        except msgspec.DecodeError as exc:
            if "UTF-8" not in str(exc):
                raise
            # A log of bytes that are not UTF-8, sent raw: kept, with U+FFFD in their place.
            return _decoder.decode(raw.decode("utf-8", errors="replace").encode())
    except msgspec.ValidationError as exc:
        raise HttpError(400, f"invalid request body: {exc}", "invalid_request") from None
    except msgspec.DecodeError as exc:
        raise HttpError(400, f"request body is not valid JSON: {exc}", "invalid_request") from None
    except RecursionError:
        raise HttpError(
            400, "request body is not valid JSON: nested too deep", "invalid_request"
        ) from None


def event_id_of(body: CiEventBody) -> str:
    """The body's event id; else one derived from what identifies the job's attempt, so the
    same job published twice is one event; else a new one."""
    if body.event_id:
        return body.event_id
    if not (body.job_id or body.workflow_id):
        return uuid.uuid4().hex
    parts = (
        body.provider,
        body.repository.full_name or body.repository.url,
        body.workflow_id,
        body.job,
        body.job_id,
        str(body.run_attempt),
    )
    digest = hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]
    return f"{body.provider}-{digest}"


def stream_msg_id(tenant: str, event_id: str) -> str:
    """The Nats-Msg-Id of an event published here. The stream dedupes across all its
    subjects: scoped by tenant (and by this entry), one tenant's ids never make another's
    events, or a provider webhook's, look like duplicates."""
    return f"api:{tenant}:{event_id}"


async def publish_event(request: web.Request, tenant: str, body: CiEventBody) -> CiEventAccepted:
    event_id = event_id_of(body)
    subject = subjects.ci_events(tenant, body.provider)
    try:
        ci_log = await stored_log(request, tenant, event_id, body.log)
        event = CiEvent(
            event_id=event_id,
            tenant=tenant,
            log=ci_log,
            received_at=time.time(),
            **{name: getattr(body, name) for name in _EVENT_FIELDS},
        )
        ack = await request.app[BUS].js_publish(
            subject,
            event,
            msg_id=stream_msg_id(tenant, event_id),
            timeout=request.app[SETTINGS].ci_publish_timeout_s,  # type: ignore[attr-defined]
        )
    except (NatsTimeout, NoStreamResponseError, TimeoutError):
        raise HttpError(
            503,
            "JetStream did not store the event (or its log) in time; retry shortly",
            "overloaded",
            {"Retry-After": "2"},
        ) from None
    receipt = None
    if ci_log is not None:
        receipt = CiLogStored(inline=ci_log.ref is None, ref=ci_log.ref, truncated=ci_log.truncated)
    return CiEventAccepted(
        event_id=event_id, subject=subject, duplicate=bool(ack.duplicate), log=receipt
    )


async def stored_log(
    request: web.Request, tenant: str, event_id: str, text: str | None
) -> CiLog | None:
    if text is None:
        return None
    data = text.encode()
    ci_log = await store_log(request.app[BUS].js, tenant, event_id, data)
    CI_LOG_BYTES.labels("inline" if ci_log.ref is None else "object_store").inc(len(data))
    return ci_log


async def _ci_stream_ctx(app: web.Application) -> AsyncIterator[None]:
    """The CI_EVENTS stream, as declared (the integrations service declares it too)."""
    await ensure_streams(app[BUS].js, (CI_EVENTS,))
    yield


def add_routes(app: web.Application) -> None:
    app.cleanup_ctx.append(_ci_stream_ctx)
    app.router.add_post(ROUTE, post_ci_event)
