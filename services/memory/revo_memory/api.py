"""The memory service's request/reply endpoints: memory.store, .recall, .forget, .history
(queue group `memory`: one replica answers each request)."""

from __future__ import annotations

from revo_contracts import subjects
from revo_contracts.audit import AuditEvent
from revo_contracts.bus_identities import OPERATOR
from revo_contracts.memory import (
    MemoryForgetRequest,
    MemoryForgetResponse,
    MemoryHistoryRequest,
    MemoryRecallRequest,
    MemoryStoreRequest,
)
from revo_core.audit import audit_event, record_audit
from revo_core.bus import Bus
from revo_core.endpoints import Endpoints
from revo_memory.lifecycle import MemoryLifecycle
from revo_memory.recall import MemoryRecall
from revo_memory.store import MemoryWriter


async def start_endpoints(
    bus: Bus,
    writer: MemoryWriter,
    recall: MemoryRecall,
    lifecycle: MemoryLifecycle,
    max_in_flight: int,
) -> Endpoints:
    endpoints = Endpoints(
        bus,
        "memory",
        description="Long-term memory: store, recall, forget, history",
        max_in_flight=max_in_flight,
    )
    await endpoints.start()
    group = subjects.MEMORY_QUEUE_GROUP
    await endpoints.add("store", subjects.MEMORY_STORE, MemoryStoreRequest, writer.store, group)
    await endpoints.add("recall", subjects.MEMORY_RECALL, MemoryRecallRequest, recall.recall, group)

    async def forget(request: MemoryForgetRequest) -> MemoryForgetResponse:
        forgotten = await lifecycle.forget(request)
        await record_audit(bus, _forget_audit(request, forgotten))
        return forgotten

    await endpoints.add("forget", subjects.MEMORY_FORGET, MemoryForgetRequest, forget, group)
    await endpoints.add(
        "history", subjects.MEMORY_HISTORY, MemoryHistoryRequest, lifecycle.history, group
    )
    return endpoints


def _forget_audit(request: MemoryForgetRequest, forgotten: MemoryForgetResponse) -> AuditEvent:
    """Only the operator's identity may publish memory.forget (bus_identities)."""
    scope = request.scope
    return audit_event(
        scope.tenant,
        OPERATOR,
        "memory.forgotten",
        target=",".join(request.ids[:20]) if request.ids else "filter",
        service="memory",
        forgotten=forgotten.forgotten,
        repository=scope.repository,
        agent=scope.agent,
        user=scope.user,
    )
