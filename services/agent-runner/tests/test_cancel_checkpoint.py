"""A cancel that asyncio lost on the way (Python 3.11's wait_for returning the reply that
arrived in the same turn) still stops the run at its next step."""

from __future__ import annotations

import asyncio

import pytest

from revo_agent_runner.loop import honour_cancel


async def test_a_swallowed_cancel_stops_the_task_at_the_next_checkpoint():
    reached: list[str] = []

    async def run() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            reached.append("swallowed")  # as wait_for does when the reply came meanwhile
        honour_cancel()
        reached.append("asked the model anyway")

    task = asyncio.create_task(run())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert reached == ["swallowed"]


async def test_a_task_never_cancelled_goes_on():
    async def run() -> str:
        honour_cancel()
        return "asked the model"

    assert await asyncio.create_task(run()) == "asked the model"
