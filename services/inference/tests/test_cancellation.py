"""A caller that stops, vanishes or runs out of time frees its request in the engine."""

from __future__ import annotations

import pytest
from inference_testkit import EMBEDDED_CHAT_MODEL, chat_request

from revo_contracts import subjects
from revo_contracts.inference import ChatChunk
from revo_core.errors import RequestTimeout
from revo_core.streaming import stream_request
from revo_core.testing.fixtures import operator_bus
from revo_core.testing.metrics import metric_value, wait_for_metric

UNFINISHED = "revo_inference_unfinished_requests"
CANCELLED = "revo_streams_cancelled_total"


def long_request():
    return chat_request("Write a very long story about a dragon.", max_tokens=1500, temperature=0.9)


async def test_a_caller_that_stops_iterating_frees_the_request_in_the_engine(
    bus, inference_service
):
    before = metric_value(inference_service, CANCELLED, reason="caller_cancel")
    idle = await wait_for_metric(inference_service, UNFINISHED, 0, model=EMBEDDED_CHAT_MODEL)
    assert idle == 0, "an earlier test left a request in the engine"
    async with stream_request(bus, subjects.INFERENCE_CHAT, long_request(), ChatChunk) as chunks:
        async for chunk in chunks:
            if chunk.index >= 3:
                break
        assert metric_value(inference_service, UNFINISHED, model=EMBEDDED_CHAT_MODEL) == 1

    assert await wait_for_metric(inference_service, UNFINISHED, 0, model=EMBEDDED_CHAT_MODEL) == 0
    assert await wait_for_metric(
        inference_service, CANCELLED, before + 1, reason="caller_cancel"
    ) == (before + 1)


async def test_a_caller_that_disappears_is_detected_and_its_request_aborted(
    nats_server, inference_service
):
    before = metric_value(inference_service, CANCELLED, reason="caller_gone")
    caller = await operator_bus(nats_server, "vanishing-caller")
    stream = stream_request(caller, subjects.INFERENCE_CHAT, long_request(), ChatChunk)
    await stream.start()
    await anext(aiter(stream))
    # Gone without a word: no cancel message, its inbox simply stops existing.
    await caller.nc.close()
    await stream.aclose()  # nothing left to tell: must not raise on a closed connection

    assert await wait_for_metric(inference_service, UNFINISHED, 0, model=EMBEDDED_CHAT_MODEL) == 0
    assert await wait_for_metric(
        inference_service, CANCELLED, before + 1, reason="caller_gone"
    ) == (before + 1)


async def test_a_caller_timeout_raises_and_frees_the_engine(bus, inference_service):
    with pytest.raises(RequestTimeout):
        async with stream_request(
            bus, subjects.INFERENCE_CHAT, long_request(), ChatChunk, timeout=1.5
        ) as chunks:
            async for _ in chunks:
                pass

    assert await wait_for_metric(inference_service, UNFINISHED, 0, model=EMBEDDED_CHAT_MODEL) == 0
