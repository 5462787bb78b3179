"""The fast agent's model for bench/gateway.py, in a process of its own (as a real inference
service would be): answers every `inference.chat` request at once with a plain text reply of
TOKENS tokens, no tool calls.

    python bench/gateway_model.py NATS_URL TOKENS

The reply starts with the last user message's text (the bench sends a unique tag per
message), so the bench can tell that the answer a socket got is the one to its message.
"""

from __future__ import annotations

import asyncio
import signal
import sys

from revo_contracts.inference import ChatRequest
from revo_core.bus import Bus
from revo_core.testing.scripted_model import Reply, ScriptedModel, text
from revo_core.tracing import setup_tracing


class FastModel(ScriptedModel):
    def __init__(self, bus: Bus, tokens: int) -> None:
        super().__init__(bus)
        # The scripted model splits a reply on spaces: one chunk (token) per word.
        self.tail = " ".join(f"w{i}" for i in range(1, max(tokens, 1)))

    def _pick(self, request: ChatRequest) -> Reply:
        self.requests.clear()  # nothing looks at them: don't grow in memory
        tag = next(
            (m.content for m in reversed(request.messages) if m.role == "user" and m.content),
            "none",
        )
        tag = str(tag).split(" ", 1)[0]
        return text(f"{tag} {self.tail}" if self.tail else tag)


async def main(nats_url: str, tokens: int) -> None:
    setup_tracing("bench-gateway-model")
    stopped = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopped.set)
    bus = await Bus.connect(nats_url, "bench-gateway-model")
    model = await FastModel(bus, tokens).start()
    print("ready", flush=True)
    await stopped.wait()
    await model.stop()
    await bus.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
