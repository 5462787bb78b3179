"""Group commit: calls that arrive while one batch is being written go together in the next.

Under load a service with many concurrent callers (runs writing events, usage events being
recorded) pays one database round trip per batch instead of one per call; with a single
caller it costs nothing extra (a batch of one goes at once). Each caller still waits for
its own item to be written, so what a caller can rely on does not change.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class GroupCommit(Generic[T, R]):
    """`flush(items) -> results` (one result per item, in order) writes a batch."""

    def __init__(
        self, flush: Callable[[list[T]], Awaitable[list[R]]], name: str, max_batch: int = 512
    ) -> None:
        self._flush = flush
        self._name = name
        self._max_batch = max_batch
        self._queue: list[tuple[T, asyncio.Future[R]]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self._name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for _, done in self._queue:
            if not done.done():
                done.set_exception(RuntimeError(f"{self._name} stopped"))
        self._queue.clear()

    async def submit(self, item: T) -> R:
        done: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, done))
        self._wake.set()
        return await done

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                batch = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
                await self._write(batch)

    async def _write(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            results = await self._flush([item for item, _ in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"{self._name}: {len(results)} results for {len(batch)} items")
        except BaseException as exc:  # a stop's cancellation too: no caller waits forever
            failure = exc if isinstance(exc, Exception) else RuntimeError(f"{self._name} stopped")
            for _, done in batch:
                if not done.done():
                    done.set_exception(failure)
            if not isinstance(exc, Exception):
                raise
            return
        for (_, done), result in zip(batch, results, strict=True):  # lengths checked above
            if not done.done():
                done.set_result(result)
