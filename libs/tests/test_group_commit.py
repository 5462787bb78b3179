"""revo_core.group_commit: batches of what arrives while a write is out, each caller answered
with its own result, one write at a time, and nobody left waiting at stop."""

from __future__ import annotations

import asyncio

import pytest

from revo_core.group_commit import GroupCommit


class Writer:
    """A flush that doubles its items and holds each batch until released."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.out = 0
        self.most_out = 0
        self.release = asyncio.Event()

    async def flush(self, items: list[int]) -> list[int]:
        self.batches.append(items)
        self.out += 1
        self.most_out = max(self.most_out, self.out)
        try:
            await self.release.wait()
        finally:
            self.out -= 1
        return [item * 2 for item in items]


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_calls_arriving_while_a_write_is_out_go_together_in_the_next():
    writer = Writer()
    group = GroupCommit(writer.flush, "test")
    group.start()
    first = asyncio.create_task(group.submit(1))
    await _settle()
    rest = [asyncio.create_task(group.submit(n)) for n in (2, 3, 4)]
    await _settle()

    writer.release.set()

    assert await first == 2
    assert [await task for task in rest] == [4, 6, 8]
    assert writer.batches == [[1], [2, 3, 4]]
    assert writer.most_out == 1
    await group.stop()


async def test_a_failed_write_fails_its_callers_only():
    calls = 0

    async def flush(items: list[int]) -> list[int]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ValueError("disk full")
        return items

    group = GroupCommit(flush, "test")
    group.start()
    with pytest.raises(ValueError, match="disk full"):
        await group.submit(1)
    assert await group.submit(2) == 2
    await group.stop()


async def test_a_flush_that_answers_the_wrong_count_fails_its_callers():
    async def flush(items: list[int]) -> list[int]:
        return items[:-1]

    group = GroupCommit(flush, "test")
    group.start()
    with pytest.raises(RuntimeError, match="0 results for 1 items"):
        await group.submit(1)
    await group.stop()


async def test_stop_answers_callers_whose_batch_is_out_and_those_still_queued():
    writer = Writer()
    group = GroupCommit(writer.flush, "test")
    group.start()
    out = asyncio.create_task(group.submit(1))
    await _settle()
    queued = asyncio.create_task(group.submit(2))
    await _settle()

    await group.stop()

    for task in (out, queued):
        with pytest.raises(RuntimeError, match="test stopped"):
            await asyncio.wait_for(task, 1)
