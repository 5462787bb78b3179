"""The NATS bus: connect, typed publish / request / subscribe, JetStream publish.

Every send carries the W3C trace context in its headers and gets a `<subject> publish`
span; every receive runs in a `<subject> process` span that continues the sender's trace.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import Error as NatsError
from nats.errors import NoRespondersError, NoServersError
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import PubAck
from opentelemetry.trace import SpanKind

from revo_contracts.bus_identities import inbox_prefix
from revo_contracts.errors import Error
from revo_core import headers as h
from revo_core import nats_jwt, tracing
from revo_core.codec import decode, encode
from revo_core.errors import (
    BusUnauthorized,
    BusUnavailable,
    InvalidRequest,
    RequestTimeout,
    error_from_code,
    error_from_contract,
)
from revo_core.logging import get_logger

T = TypeVar("T")
log = get_logger("revo.bus")


class Bus:
    """One NATS connection of a process, with typed helpers on top."""

    def __init__(self, nc: Client, url: str) -> None:
        self.nc = nc
        self.url = url
        self.js: JetStreamContext = nc.jetstream()

    @classmethod
    async def connect(
        cls,
        url: str,
        name: str,
        connect_timeout: float = 2.0,
        connect_attempts: int = 3,
        credentials: str | Path | None = None,
    ) -> Bus:
        """Connect, failing clearly after a few attempts if nothing answers now; once
        connected, reconnect forever (a restarted nats-server must not kill a service).

        `credentials`: a `.creds` file (revo_core.bus_authority). Its identity's replies come
        to its own inbox prefix, the only inboxes its permissions let it read."""
        auth: dict[str, Any] = {}
        refusals: list[str] = []

        async def on_error(exc: Exception) -> None:
            if "authorization" in str(exc).lower() or "authentication" in str(exc).lower():
                refusals.append(str(exc))
            await _log_error(exc)

        if credentials:
            auth = {
                "user_credentials": str(credentials),
                "inbox_prefix": inbox_prefix(identity_of(credentials)),
            }
        try:
            nc = await nats.connect(
                url,
                name=name,
                connect_timeout=connect_timeout,
                allow_reconnect=True,
                max_reconnect_attempts=connect_attempts,
                reconnect_time_wait=0.5,
                error_cb=on_error,
                disconnected_cb=_log_disconnect,
                reconnected_cb=_log_reconnect,
                **auth,
            )
        except (NoServersError, OSError, TimeoutError, NatsError) as exc:
            if refusals:
                raise BusUnauthorized(
                    f"NATS at {url} refused the connection: "
                    + ("its credentials were refused" if credentials else "it needs credentials")
                    + " (NATS_CREDS: a .creds file of revo's; `revo creds create` issues one)"
                ) from None
            raise BusUnavailable(
                f"cannot reach NATS at {url} ({exc.__class__.__name__}); "
                "is nats-server running? `revo up` starts one"
            ) from None
        nc.options["max_reconnect_attempts"] = -1
        return cls(nc, url)

    @property
    def connected(self) -> bool:
        return self.nc.is_connected

    def encode(self, message: Any) -> bytes:
        """Encode for sending; a message over the server's max_payload is refused here,
        with its size, rather than by a connection-level error."""
        data = encode(message)
        limit = self.nc.max_payload
        if limit and len(data) > limit:
            raise InvalidRequest(
                f"message of {len(data)} bytes exceeds the {limit}-byte limit of NATS",
                {"size": len(data), "max_payload": limit},
            )
        return data

    async def publish(
        self, subject: str, message: Any, headers: Mapping[str, str] | None = None
    ) -> None:
        with tracing.publish_span(subject):
            await self.nc.publish(subject, self.encode(message), headers=tracing.inject(headers))

    async def js_publish(
        self,
        subject: str,
        message: Any,
        msg_id: str | None = None,
        timeout: float = 5.0,
        span: bool = True,
    ) -> PubAck:
        """Publish to a stream; `msg_id` makes a repeat within the stream's window a no-op.
        `span=False` skips the publish span (hot paths whose caller's span says enough);
        the current trace context is still sent."""
        extra = {h.MSG_ID: msg_id} if msg_id else None
        if not span:
            return await self.js.publish(
                subject, self.encode(message), timeout=timeout, headers=tracing.inject(extra)
            )
        with tracing.publish_span(subject):
            return await self.js.publish(
                subject, self.encode(message), timeout=timeout, headers=tracing.inject(extra)
            )

    async def js_publish_nowait(
        self, subject: str, message: Any, msg_id: str | None = None
    ) -> asyncio.Future[PubAck]:
        """Publish to a stream without waiting for the ack: the returned future gets it.
        Messages published this way from one connection are stored in the order sent; the
        caller awaits the futures when it needs to know they were stored."""
        extra = {h.MSG_ID: msg_id} if msg_id else None
        return await self.js.publish_async(
            subject, self.encode(message), headers=tracing.inject(extra)
        )

    async def request(
        self, subject: str, message: Any, reply_type: type[T], timeout: float = 5.0
    ) -> T:
        """Request/reply; an error reply is raised as its typed ServiceError."""
        with tracing.publish_span(subject, kind=SpanKind.CLIENT):
            try:
                msg = await self.nc.request(
                    subject, self.encode(message), timeout=timeout, headers=tracing.inject()
                )
            except NoRespondersError:
                raise BusUnavailable(f"no service is listening on {subject}") from None
            except NatsTimeout:
                raise RequestTimeout(f"no reply on {subject} within {timeout}s") from None
        raise_if_error(msg)
        return decode(msg.data, reply_type)

    async def subscribe(
        self,
        subject: str,
        handler: Callable[[Any, Msg], Awaitable[None]],
        message_type: type[Any],
        queue: str = "",
    ) -> Subscription:
        """Core subscription whose handler gets the decoded message; bad payloads are logged
        and dropped, never fatal to the subscription."""

        async def on_message(msg: Msg) -> None:
            with tracing.process_span(msg.subject, msg.headers):
                try:
                    decoded = decode(msg.data, message_type)
                except Exception as exc:
                    log.warning("dropped malformed message", subject=msg.subject, error=str(exc))
                    return
                await handler(decoded, msg)

        return await self.nc.subscribe(subject, queue=queue, cb=on_message)

    async def close(self) -> None:
        """Drain: stop taking messages, let handlers finish, flush, close."""
        if self.nc.is_closed:
            return
        try:
            await self.nc.drain()
        except Exception as exc:  # already closing or disconnected: nothing left to drain
            log.debug("drain skipped", error=str(exc))
            await self.nc.close()


def identity_of(credentials: str | Path) -> str:
    """The identity a `.creds` file speaks as (its user JWT's name)."""
    return str(nats_jwt.creds_claims(Path(credentials).read_text())["name"])


def raise_if_error(msg: Msg) -> None:
    """Turn an error reply (micro headers + Error body) back into its typed exception."""
    headers = msg.headers or {}
    if headers.get(h.STATUS) == h.NO_RESPONDERS:
        raise BusUnavailable(f"no service is listening on {msg.subject}")
    code = headers.get(h.ERROR_CODE)
    if code is None:
        return
    try:
        error = msgspec.json.decode(msg.data, type=Error)
    except (msgspec.DecodeError, msgspec.ValidationError):
        raise error_from_code(code, headers.get(h.ERROR_MESSAGE, "")) from None
    raise error_from_contract(error)


async def _log_error(exc: Exception) -> None:
    log.warning("nats error", error=str(exc))


async def _log_disconnect() -> None:
    log.info("nats disconnected")


async def _log_reconnect() -> None:
    log.info("nats reconnected")
