"""The inference service keeps the memory its embedding passes free (allocator.py) instead
of giving it back to the OS and faulting it in again on the next pass."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from revo_contracts import subjects
from revo_contracts.inference import EmbedRequest, EmbedResponse
from revo_core.embedded.nats_server import NatsServer
from revo_core.embedded.service_process import ServiceProcess
from revo_core.testing.fixtures import embed_only_inference, nats_server_of, operator_bus
from revo_inference.allocator import keep_freed_memory

WORDS = ["build", "test", "failed", "import", "header", "token", "retry", "cache"]
WORDS += ["timeout", "worker", "queue", "deploy"]


def test_glibc_takes_the_settings():
    assert keep_freed_memory()


def minor_faults(pid: int) -> int:
    """Minor page faults of the whole process so far (/proc/<pid>/stat, field 10)."""
    after_name = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(after_name[7])


def texts(seed: int) -> list[str]:
    pick = random.Random(seed)
    return [" ".join(pick.choices(WORDS, k=pick.randint(5, 30))) for _ in range(100)]


async def embed(bus, batch: list[str]) -> None:
    request = EmbedRequest(texts=batch, tenant="faults", request_id=f"emb-{uuid.uuid4().hex}")
    reply = await bus.request(subjects.INFERENCE_EMBED, request, EmbedResponse, timeout=60)
    assert len(reply.embeddings) == len(batch)


@pytest.fixture(scope="module")
def embed_only(revo_tmp: Path, bus_authority) -> Iterator[tuple[NatsServer, ServiceProcess]]:
    """An embed-only service, as the memory service uses (the session's inference service,
    with its chat engine loaded too, did not fault even without the settings), on a NATS of
    its own so that it alone answers inference.embed."""
    nats = nats_server_of(revo_tmp / "nats-allocator", bus_authority)
    service = embed_only_inference(nats.url, revo_tmp / "allocator")
    yield nats, service
    service.stop()
    nats.stop()


async def test_embedding_passes_do_not_fault_their_memory_back_in(embed_only):
    nats, service = embed_only
    bus = await operator_bus(nats, "pytest-allocator")
    try:
        for seed in range(2):
            await embed(bus, texts(seed))
        before = minor_faults(service.process.pid)
        for seed in range(2, 7):
            await embed(bus, texts(seed))
        per_text = (minor_faults(service.process.pid) - before) / 500
    finally:
        await bus.close()
    # Measured: about 215 per text with glibc's defaults, about 1 with the settings.
    assert per_text < 30, f"{per_text:.0f} page faults per embedded text"
