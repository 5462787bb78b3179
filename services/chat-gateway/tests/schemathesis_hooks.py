"""Schemathesis hooks of the gateway's fuzz test (loaded through SCHEMATHESIS_HOOKS).

Schemathesis checks each event of a streamed chat completion against the document itself;
this adds what a schema of one event cannot say: how the stream ends."""

from __future__ import annotations

from typing import Any

import schemathesis

DONE = "[DONE]"


def data_payloads(raw: bytes) -> list[str]:
    """The `data:` payload of each event of an SSE stream, in order (comments skipped)."""
    payloads = []
    for event in raw.decode().replace("\r\n", "\n").split("\n\n"):
        lines = [line[5:].strip() for line in event.split("\n") if line.startswith("data:")]
        if lines:
            payloads.append("\n".join(lines))
    return payloads


@schemathesis.check
def a_stream_ends_with_done_or_one_error(ctx: Any, response: Any, case: Any) -> None:
    """A streamed answer is never silently truncated: `[DONE]` after the chunks, or one
    error event last."""
    content_type = response.headers.get("content-type", [""])[0]
    if not content_type.startswith("text/event-stream"):
        return
    payloads = data_payloads(response.content)
    if not payloads:
        raise AssertionError("the stream sent no event")
    ends = [i for i, p in enumerate(payloads) if p == DONE or p.startswith('{"error"')]
    if ends != [len(payloads) - 1]:
        raise AssertionError(f"the stream's last events are {payloads[-2:]!r}: not one end")
