"""Dead letters of notifications: `notify_dead.<channel>.<tenant>` (stream NOTIFY_DEAD).

A notification that failed every attempt (or that its destination refused for good) is
stored there with its last error before its delivery is acked, so nothing is lost. The
operator lists them (`revo notify dead`) and sends them again (`revo notify redrive`): a
redriven one goes back to `notify.<channel>.<tenant>` with a fresh Nats-Msg-Id (the
original id is still in NOTIFY's duplicate window) and the same notification id (the
idempotency key: what it already posted is updated, not posted again), and its dead letter
is deleted.
"""

from __future__ import annotations

import time
import uuid

import msgspec
from nats.aio.msg import Msg
from nats.js.errors import NotFoundError

from revo_contracts import subjects
from revo_contracts.notify import (
    DeadNotification,
    Notification,
    NotifyDeadLetter,
    NotifyDeadListRequest,
    NotifyRedriveRequest,
)
from revo_contracts.streams import NOTIFY_DEAD
from revo_core.bus import Bus
from revo_core.errors import InvalidRequest, NotFound
from revo_core.logging import get_logger
from revo_integrations.notify_store import NotifyStore

log = get_logger("revo.integrations.notify.dead")
_dead = msgspec.json.Decoder(DeadNotification)


class DeadLetters:
    def __init__(self, bus: Bus, store: NotifyStore) -> None:
        self.bus = bus
        self.store = store

    async def send(self, note: Notification, msg: Msg, attempts: int, error: str) -> None:
        """Store the dead letter (raises if it was not stored: the caller must not ack)."""
        letter = DeadNotification(
            notification=note, attempts=attempts, last_error=error[:2048], dead_at=time.time()
        )
        # One dead letter per stored notification message, however often it is delivered.
        msg_id = f"dead-{note.channel}-{msg.metadata.sequence.stream}"
        await self.bus.js_publish(
            subjects.notify_dead(note.channel, note.tenant), letter, msg_id=msg_id
        )

    async def list(self, request: NotifyDeadListRequest) -> list[NotifyDeadLetter]:
        """Dead letters, oldest first (the stream's single-message reads: no consumer)."""
        channel = subjects.token(request.channel, "channel") if request.channel else "*"
        tenant = subjects.token(request.tenant, "tenant") if request.tenant else "*"
        wanted = f"notify_dead.{channel}.{tenant}"
        letters: list[NotifyDeadLetter] = []
        seq = 1
        while len(letters) < request.limit:
            try:
                raw = await self.bus.js.get_msg(
                    NOTIFY_DEAD.name, seq=seq, subject=wanted, next=True
                )
            except NotFoundError:
                break
            try:
                letters.append(NotifyDeadLetter(seq=raw.seq, dead=_dead.decode(raw.data)))
            except msgspec.DecodeError as exc:  # not ours: left alone, and said
                log.warning("unreadable dead letter skipped", seq=raw.seq, error=str(exc)[:200])
            seq = raw.seq + 1
        return letters

    async def redrive(self, request: NotifyRedriveRequest) -> int:
        if not request.all and request.notification_id is None:
            raise InvalidRequest("name a notification_id, or all", {"field": "notification_id"})
        letters = await self.list(NotifyDeadListRequest(tenant=request.tenant, limit=1000))
        if not request.all:
            letters = [
                letter
                for letter in letters
                if letter.dead.notification.notification_id == request.notification_id
            ]
            if not letters:
                raise NotFound(f"no dead letter of notification {request.notification_id}")
        for letter in letters:
            await self._redrive_one(letter)
        return len(letters)

    async def _redrive_one(self, letter: NotifyDeadLetter) -> None:
        note = letter.dead.notification
        await self.store.revive(note)
        fresh_id = f"{note.notification_id}:redrive-{uuid.uuid4().hex[:12]}"
        await self.bus.js_publish(subjects.notify(note.channel, note.tenant), note, msg_id=fresh_id)
        await self.bus.js.delete_msg(NOTIFY_DEAD.name, letter.seq)
        log.info(
            "dead notification redriven",
            notification_id=note.notification_id,
            channel=note.channel,
            tenant=note.tenant,
            dead_seq=letter.seq,
        )
