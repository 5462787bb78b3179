"""Recording an audit event (revo_contracts.audit): one JetStream publish to `audit.<tenant>`.

The action it records has already happened when this is called, so a failure to record is
logged loudly (`audit event not recorded`, with the whole event) and counted, never raised
into the caller's answer: the operator finds it in the logs and the metric.
"""

from __future__ import annotations

import time
import uuid

from prometheus_client import Counter

from revo_contracts import subjects
from revo_contracts.audit import AuditAction, AuditEvent, Detail
from revo_core.bus import Bus
from revo_core.logging import get_logger

log = get_logger("revo.audit")
NOT_RECORDED = Counter(
    "revo_audit_events_not_recorded_total", "Audit events that could not be published"
)


def audit_event(
    tenant: str,
    actor: str,
    action: AuditAction,
    target: str = "",
    service: str = "",
    **details: Detail,
) -> AuditEvent:
    return AuditEvent(
        event_id=uuid.uuid4().hex,
        tenant=tenant,
        at=time.time(),
        actor=actor,
        action=action,
        target=target,
        service=service,
        details=details,
    )


async def record_audit(bus: Bus, event: AuditEvent) -> bool:
    """Publish the event to the AUDIT stream; False (logged, counted) when it could not be."""
    try:
        await bus.js_publish(subjects.audit(event.tenant), event, msg_id=event.event_id)
    except Exception as exc:
        NOT_RECORDED.inc()
        log.error("audit event not recorded", error=str(exc), audit=_loggable(event))
        return False
    return True


def _loggable(event: AuditEvent) -> dict:
    return {
        "event_id": event.event_id,
        "tenant": event.tenant,
        "actor": event.actor,
        "action": event.action,
        "target": event.target,
    }
