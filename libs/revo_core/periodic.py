"""Work a service repeats in the background (a sweep, a reconciliation, a gauge's refresh):
one task per job, which outlives any failure of one pass and stops with the service."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from revo_core.logging import get_logger

log = get_logger("revo.periodic")


class Periodic:
    def __init__(self, name: str, every_s: float, work: Callable[[], Awaitable[object]]) -> None:
        self.name = name
        self.every_s = every_s
        self.work = work
        self._task: asyncio.Task[None] | None = None

    def start(self) -> Periodic:
        self._task = asyncio.create_task(self._loop(), name=self.name)
        return self

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        while True:
            try:
                await self.work()
            except Exception as exc:  # Postgres or NATS away: the next pass tries again
                log.warning("periodic work failed", work=self.name, error=str(exc))
            await asyncio.sleep(self.every_s)
