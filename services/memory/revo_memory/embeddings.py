"""Embeddings from `inference.embed`, with the failures a caller can act on.

Whatever goes wrong on the way — no inference replica listening, no answer in time, an
error reply — becomes `upstream_error` naming the cause, raised before anything is
written. Recall queries of concurrent callers go to inference together (group commit: the
texts that arrive while one call is out go in the next), so 20 callers cost a few batched
forward passes instead of 20 queued ones; the batch's request continues the trace of its
first caller (each caller's own `memory.recall process` span has the batch size).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
from opentelemetry import context

from revo_contracts import subjects
from revo_contracts.inference import EmbedRequest, EmbedResponse
from revo_core.bus import Bus
from revo_core.errors import BusUnavailable, ServiceError, UpstreamError
from revo_core.group_commit import GroupCommit
from revo_core.logging import get_logger
from revo_memory import metrics

# EmbedRequest takes 256 texts, but the reply of 256 384-d vectors in JSON (~2 MB) is over
# NATS's default 1 MB max_payload; 64 stay well under it.
MAX_TEXTS_PER_CALL = 64
log = get_logger("revo.memory.embeddings")


@dataclass(frozen=True)
class _Query:
    text: str
    tenant: str
    trace_context: context.Context


class Embedder:
    def __init__(self, bus: Bus, model: str, timeout_s: float, cache_size: int = 0) -> None:
        self._bus = bus
        self._model = model
        self._timeout_s = timeout_s
        self.model_name = ""  # the model inference resolved `model` to
        self.dimensions = 0
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        self._queries: GroupCommit[_Query, np.ndarray] = GroupCommit(
            self._embed_queries, "memory-query-embed", max_batch=64
        )

    async def probe(self) -> int:
        """Ask inference for one embedding: the model's name and dimension."""
        await self.embed(["dimension probe"], tenant="memory")
        return self.dimensions

    def start(self) -> None:
        self._queries.start()

    async def stop(self) -> None:
        await self._queries.stop()

    async def embed(self, texts: list[str], tenant: str) -> np.ndarray:
        """One row per text, L2-normalized float32, in order."""
        # Concurrently: with several inference replicas the parts are embedded in parallel.
        parts = await asyncio.gather(
            *(
                self._call(texts[i : i + MAX_TEXTS_PER_CALL], tenant)
                for i in range(0, len(texts), MAX_TEXTS_PER_CALL)
            )
        )
        return np.concatenate(parts) if len(parts) > 1 else parts[0]

    async def embed_query(self, text: str, tenant: str) -> np.ndarray:
        cached = self._cache.get(text)
        if cached is not None:
            self._cache.move_to_end(text)
            metrics.QUERY_CACHE.labels("hit").inc()
            return cached
        metrics.QUERY_CACHE.labels("miss").inc()
        vector = await self._queries.submit(_Query(text, tenant, context.get_current()))
        if self._cache_size:
            self._cache[text] = vector
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return vector

    async def _embed_queries(self, queries: list[_Query]) -> list[np.ndarray]:
        token = context.attach(queries[0].trace_context)
        try:
            vectors = await self._call([q.text for q in queries], queries[0].tenant)
        finally:
            context.detach(token)
        metrics.QUERY_BATCH.observe(len(queries))
        return list(vectors)

    async def _call(self, texts: list[str], tenant: str) -> np.ndarray:
        request = EmbedRequest(
            texts=texts, tenant=tenant, request_id=f"mem-{uuid.uuid4().hex}", model=self._model
        )
        started = time.perf_counter()
        try:
            reply = await self._bus.request(
                subjects.INFERENCE_EMBED, request, EmbedResponse, timeout=self._timeout_s
            )
        except BusUnavailable as exc:
            raise _upstream("no inference replica answers inference.embed", exc) from None
        except ServiceError as exc:
            raise _upstream(f"inference.embed failed: {exc}", exc) from None
        finally:
            metrics.EMBED_SECONDS.observe(time.perf_counter() - started)
        vectors = np.asarray(reply.embeddings, dtype=np.float32)
        if vectors.shape != (len(texts), reply.dimensions):
            raise UpstreamError(
                "inference.embed answered vectors of the wrong shape",
                {"expected": [len(texts), reply.dimensions], "got": list(vectors.shape)},
            )
        self.model_name, self.dimensions = reply.model, reply.dimensions
        return _normalized(vectors)


def _normalized(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def _upstream(message: str, cause: Exception) -> UpstreamError:
    metrics.EMBED_FAILURES.labels(cause.__class__.__name__).inc()
    code = getattr(getattr(cause, "code", None), "value", None)
    details = {"upstream": subjects.INFERENCE_EMBED, "cause": code or cause.__class__.__name__}
    return UpstreamError(message, details)
