"""A session's live frames across gateway replicas.

The replica that follows a run stores its items and pushes them to its own sockets of the
session; it also publishes every frame on `gateway.sessions.<session>`, where the replicas
holding the session's other sockets (a client reconnected through the load balancer, a
second tab) are subscribed while they have one. Items are numbered and in Postgres, so a
receiver drops what a socket has and fills gaps from the database; tokens are best effort
(the answer item carries the whole text).
"""

from __future__ import annotations

import secrets
import socket
from collections.abc import Awaitable, Callable

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from revo_contracts import subjects
from revo_core.logging import get_logger

REPLICA_HEADER = "Revo-Gateway-Replica"
log = get_logger("revo.chat_gateway.fanout")

OnRemoteFrame = Callable[[str, bytes], Awaitable[None]]


def new_replica_id() -> str:
    return f"{socket.gethostname()}-{secrets.token_hex(4)}"


class SessionFanout:
    def __init__(self, nc: Client, on_remote: OnRemoteFrame) -> None:
        self.nc = nc
        self.replica_id = new_replica_id()
        self._headers = {REPLICA_HEADER: self.replica_id}
        self._on_remote = on_remote
        self._watching: dict[str, Subscription] = {}

    async def send(self, session_id: str, frame: str) -> None:
        """Publish a frame for the session's sockets on other replicas (a buffered write:
        no round trip; nobody listening costs the server nothing)."""
        try:
            await self.nc.publish(
                subjects.gateway_session(session_id), frame.encode(), headers=self._headers
            )
        except Exception as exc:  # NATS down: local sockets still get it, others resume
            log.warning("session frame not published", session_id=session_id, error=str(exc))

    async def watch(self, session_id: str) -> None:
        if session_id in self._watching:
            return

        async def on_message(msg: Msg) -> None:
            if (msg.headers or {}).get(REPLICA_HEADER) == self.replica_id:
                return  # our own: our sockets have it already
            try:
                await self._on_remote(session_id, msg.data)
            except Exception:
                log.exception("a frame from another replica was not delivered")

        subject = subjects.gateway_session(session_id)
        self._watching[session_id] = await self.nc.subscribe(subject, cb=on_message)
        await self.nc.flush()  # the server has the subscription: nothing sent later is missed

    async def unwatch(self, session_id: str) -> None:
        subscription = self._watching.pop(session_id, None)
        if subscription is not None:
            try:
                await subscription.unsubscribe()
            except Exception as exc:  # closing already
                log.debug("unsubscribe skipped", error=str(exc))
