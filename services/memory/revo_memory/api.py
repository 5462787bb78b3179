"""The memory service's request/reply endpoints: memory.store, .recall, .forget, .history
(queue group `memory`: one replica answers each request)."""

from __future__ import annotations

from revo_contracts import subjects
from revo_contracts.memory import (
    MemoryForgetRequest,
    MemoryHistoryRequest,
    MemoryRecallRequest,
    MemoryStoreRequest,
)
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
    await endpoints.add(
        "forget", subjects.MEMORY_FORGET, MemoryForgetRequest, lifecycle.forget, group
    )
    await endpoints.add(
        "history", subjects.MEMORY_HISTORY, MemoryHistoryRequest, lifecycle.history, group
    )
    return endpoints
