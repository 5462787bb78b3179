"""Usage events the ledger cannot record go to `usage_dead.<reason>` (stream USAGE_DEAD).

A dead letter carries the reason, the original subject and bytes, and is stored by
JetStream before the original delivery is terminated, so a bad event is never lost
silently, and never redelivered to the ledger either.
"""

from __future__ import annotations

import base64
import time

from nats.aio.msg import Msg

from revo_contracts import subjects
from revo_contracts.ledger import UsageDeadLetter
from revo_core import headers as h
from revo_core.bus import Bus
from revo_core.logging import get_logger
from revo_cost_ledger import metrics
from revo_cost_ledger.usage_rows import Rejection

log = get_logger("revo.cost_ledger.dead_letters")

REASON_HEADER = "Revo-Dead-Reason"
# Of the original bytes kept: a dead letter must fit the stream whatever came in.
MAX_PAYLOAD = 64 * 1024


class DeadLetters:
    def __init__(self, bus: Bus) -> None:
        self.bus = bus

    async def send(self, msg: Msg, rejection: Rejection) -> None:
        """Store the dead letter, then terminate the delivery; raises if it was not stored
        (the caller naks the delivery so that it comes back)."""
        letter = dead_letter(msg, rejection)
        headers = {REASON_HEADER: rejection.reason}
        if letter.stream_seq is not None:
            # One dead letter per stored event, however often it is delivered.
            headers[h.MSG_ID] = f"usage-dead-{letter.stream_seq}"
        await self.bus.js.publish(
            subjects.usage_dead(rejection.reason), self.bus.encode(letter), headers=headers
        )
        await msg.term()
        metrics.USAGE_EVENTS.labels("dead_lettered").inc()
        metrics.DEAD_LETTERS.labels(rejection.reason).inc()
        log.warning(
            "usage event dead-lettered",
            reason=rejection.reason,
            detail=rejection.detail[:500],
            subject=msg.subject,
            stream_seq=letter.stream_seq,
        )


def dead_letter(msg: Msg, rejection: Rejection) -> UsageDeadLetter:
    letter = UsageDeadLetter(
        reason=rejection.reason,
        detail=rejection.detail[:2000],
        subject=msg.subject,
        received_at=time.time(),
        stream_seq=msg.metadata.sequence.stream if msg.reply else None,
    )
    data = msg.data
    if len(data) > MAX_PAYLOAD:
        letter.detail += f" (payload cut to {MAX_PAYLOAD} of {len(data)} bytes)"
        data = data[:MAX_PAYLOAD]
    try:
        letter.payload = data.decode()
    except UnicodeDecodeError:
        letter.payload_base64 = base64.b64encode(data).decode()
    return letter
