"""The scripted model of bench/runs.py in a process of its own, so its replies do not queue
behind the submitter's work in the bench process (as a real inference service would not).

    python bench/scripted_model_process.py NATS_URL RECORD_FILE

Replies by the shape of the request: with tools, `list_files` first and then
`final_answer`; without, one text reply. Every request is recorded as a JSON line in
RECORD_FILE (flushed when asked on `bench.scripted.flush`), for the bench's baseline.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import BinaryIO

import msgspec

from revo_contracts.inference import ChatRequest
from revo_core.bus import Bus
from revo_core.testing.scripted_model import Reply, ScriptedModel, call, text
from revo_core.tracing import setup_tracing

FLUSH_SUBJECT = "bench.scripted.flush"
TOOL_RUN = (call("list_files"), call("final_answer", answer="done"))
CHAT_RUN = text("done")


class BenchModel(ScriptedModel):
    def __init__(self, bus: Bus, record: BinaryIO) -> None:
        super().__init__(bus)
        self.record = record
        self.encoder = msgspec.json.Encoder()

    def _pick(self, request: ChatRequest) -> Reply:
        self.record.write(self.encoder.encode(request) + b"\n")
        self.requests.clear()  # recorded on disk; don't grow in memory
        if not request.tools:
            return CHAT_RUN
        step = sum(1 for m in request.messages if m.role == "tool")
        return TOOL_RUN[min(step, len(TOOL_RUN) - 1)]


async def main(nats_url: str, record: BinaryIO) -> None:
    setup_tracing("bench-scripted-model")
    stopped = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopped.set)
    bus = await Bus.connect(nats_url, "bench-scripted-model")
    model = await BenchModel(bus, record).start()

    async def flush(msg) -> None:
        record.flush()
        await msg.respond(b"ok")

    await bus.nc.subscribe(FLUSH_SUBJECT, cb=flush)
    print("ready", flush=True)
    await stopped.wait()
    await model.stop()
    await bus.close()


if __name__ == "__main__":
    with open(sys.argv[2], "ab") as record_file:
        asyncio.run(main(sys.argv[1], record_file))
