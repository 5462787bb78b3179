"""Consumer lag on /metrics: how many CI events and notifications wait for this service.

Read from JetStream (consumer info: pending = not yet delivered, ack_pending = delivered and
not yet acked), every few seconds, so a scrape costs no request to the server.
"""

from __future__ import annotations

from nats.js.errors import NotFoundError
from prometheus_client import Gauge

from revo_contracts.notify import CHANNELS
from revo_contracts.streams import CI_EVENTS, NOTIFY
from revo_core.bus import Bus
from revo_core.logging import get_logger
from revo_core.periodic import Periodic

CONSUMER_PENDING = Gauge(
    "revo_integrations_consumer_pending",
    "Messages waiting for the integrations service, by consumer and state: pending (not "
    "delivered yet) and ack_pending (delivered, not acked yet).",
    ["consumer", "state"],
)
# (stream, durable consumer) pairs this service reads.
CONSUMERS: tuple[tuple[str, str], ...] = (
    (CI_EVENTS.name, "integrations-ci"),
    *((NOTIFY.name, f"notify-{channel}") for channel in CHANNELS),
)
log = get_logger("revo.integrations.lag")


class ConsumerLag:
    def __init__(self, bus: Bus, every_s: float = 5.0) -> None:
        self.bus = bus
        self._passes = Periodic("consumer-lag", every_s, self.measure)

    def start(self) -> ConsumerLag:
        self._passes.start()
        return self

    async def stop(self) -> None:
        await self._passes.stop()

    async def measure(self) -> None:
        for stream, consumer in CONSUMERS:
            try:
                info = await self.bus.js.consumer_info(stream, consumer)
            except NotFoundError:
                continue  # not created yet (its part of the service has not started)
            except Exception as exc:  # NATS away: the last figures stay until it is back
                log.debug("consumer info failed", consumer=consumer, error=str(exc))
                continue
            CONSUMER_PENDING.labels(consumer, "pending").set(info.num_pending or 0)
            CONSUMER_PENDING.labels(consumer, "ack_pending").set(info.num_ack_pending or 0)
