"""The audit log's keeper: consumes stream AUDIT (durable `chat-gateway-audit`) into
`gateway.audit`, and lists it (`gateway.audit.list` for operators, `GET /v1/audit` for a
tenant's admins).

An event is acked once stored; one whose tenant differs from its subject's tenant token is
refused and logged (`tenant_mismatch`: a forged or misrouted event); a malformed one is
logged and terminated. A Postgres failure leaves the event in the stream for redelivery.
"""

from __future__ import annotations

import datetime

import asyncpg
import msgspec
from aiohttp import web
from nats.aio.msg import Msg

from revo_chat_gateway import metrics
from revo_contracts.audit import AuditEvent, AuditListRequest, AuditListResponse
from revo_contracts.streams import AUDIT
from revo_core.bus import Bus
from revo_core.durable_consumer import DurableConsumer
from revo_core.logging import get_logger
from revo_core.tracing import process_span

CONSUMER = "chat-gateway-audit"
BATCH = 64
log = get_logger("revo.chat_gateway.audit")
_decoder = msgspec.json.Decoder(AuditEvent)


class AuditKeeper:
    def __init__(self, bus: Bus, pool: asyncpg.Pool) -> None:
        self.bus = bus
        self.pool = pool
        self.consumer = DurableConsumer(
            bus, AUDIT.name, CONSUMER, "audit.>", self._keep, ack_wait_s=30, batch=BATCH
        )

    async def start(self) -> None:
        await self.consumer.start()

    async def stop(self) -> None:
        await self.consumer.stop()

    async def _keep(self, msg: Msg) -> None:
        # The recording service's trace goes on here: one trace shows the action and its
        # audit row.
        with process_span(msg.subject, msg.headers):
            outcome = await self._store(msg)
        metrics.AUDIT_EVENTS.labels(outcome).inc()

    async def _store(self, msg: Msg) -> str:
        """Store one delivery and settle it; its outcome (stored, refused, retried)."""
        event = _accepted(msg)
        if event is None:
            await msg.term()
            return "refused"
        try:
            await self._insert(event)
        except asyncpg.DataError as exc:
            # A value Postgres will never take (a NUL character, a time out of range): a
            # redelivery would fail the same way for ever, so it is dropped, and said.
            log.error("audit event dropped: not storable", event_id=event.event_id, error=str(exc))
            await msg.term()
            return "refused"
        except (asyncpg.PostgresError, OSError) as exc:
            log.warning("audit event not stored yet", event_id=event.event_id, error=str(exc))
            await msg.nak(delay=1.0)
            return "retried"
        await msg.ack()
        return "stored"

    async def _insert(self, event: AuditEvent) -> None:
        await self.pool.execute(
            "INSERT INTO gateway.audit (event_id, tenant, at, actor, action, target, service, "
            "details) VALUES ($1, $2, to_timestamp($3), $4, $5, $6, $7, $8::jsonb) "
            "ON CONFLICT (event_id) DO NOTHING",
            event.event_id,
            event.tenant,
            event.at,
            event.actor,
            event.action,
            event.target,
            event.service,
            msgspec.json.encode(event.details).decode(),
        )

    async def list(self, request: AuditListRequest) -> AuditListResponse:
        rows = await self.pool.fetch(
            "SELECT event_id, tenant, extract(epoch FROM at) AS at, actor, action, target, "
            "service, details::text AS details FROM gateway.audit "
            "WHERE ($1::text IS NULL OR tenant = $1) AND ($2::timestamptz IS NULL OR at >= $2) "
            "AND ($3::text IS NULL OR action = $3) ORDER BY at DESC, event_id LIMIT $4",
            request.tenant,
            _timestamp(request.since),
            request.action,
            request.limit,
        )
        return AuditListResponse(events=[_event(row) for row in rows])


def _accepted(msg: Msg) -> AuditEvent | None:
    try:
        event = _decoder.decode(msg.data)
    except (msgspec.DecodeError, RecursionError) as exc:  # RecursionError: nested too deep
        log.error("malformed audit event dropped", subject=msg.subject, error=repr(exc)[:200])
        return None
    subject_tenant = msg.subject.split(".", 1)[1]
    if event.tenant != subject_tenant:
        log.error(
            "audit event dropped: tenant_mismatch",
            subject=msg.subject,
            event_tenant=event.tenant,
            event_id=event.event_id,
        )
        return None
    return event


def _timestamp(since: float | None) -> datetime.datetime | None:
    if since is None:
        return None
    return datetime.datetime.fromtimestamp(since, datetime.UTC)


def _event(row: asyncpg.Record) -> AuditEvent:
    return AuditEvent(
        event_id=row["event_id"],
        tenant=row["tenant"],
        at=float(row["at"]),
        actor=row["actor"],
        action=row["action"],
        target=row["target"],
        service=row["service"],
        details=msgspec.json.decode(row["details"]),
    )


AUDIT_KEEPER: web.AppKey[AuditKeeper] = web.AppKey("audit_keeper", AuditKeeper)
