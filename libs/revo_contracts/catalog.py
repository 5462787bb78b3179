"""The catalog of messages and subjects: what `make proto` publishes into proto/.

Adding a message family means adding its Structs to MESSAGES and its subjects to
CHANNELS; the proto drift test then asks for `make proto`.
"""

from __future__ import annotations

from typing import Any

import msgspec

from revo_contracts import inference, subjects, usage
from revo_contracts.errors import Error

MESSAGES: tuple[type[msgspec.Struct], ...] = (
    inference.ChatRequest,
    inference.ChatChunk,
    inference.EmbedRequest,
    inference.EmbedResponse,
    inference.ModelsRequest,
    inference.ModelsResponse,
    inference.ModelInfo,
    usage.UsageEvent,
    Error,
)


class Channel(msgspec.Struct, frozen=True, kw_only=True):
    address: str
    description: str
    sends: type[msgspec.Struct]
    replies: tuple[type[msgspec.Struct], ...] = ()
    reply_is_stream: bool = False


CHANNELS: tuple[Channel, ...] = (
    Channel(
        address=subjects.INFERENCE_CHAT,
        description="Chat completion; the reply is a stream of ChatChunk on the caller's "
        "inbox (header Revo-Stream: chunk|end), the last chunk with usage. Queue group "
        "'inference'. Errors: Error body with Nats-Service-Error-Code.",
        sends=inference.ChatRequest,
        replies=(inference.ChatChunk, Error),
        reply_is_stream=True,
    ),
    Channel(
        address=subjects.INFERENCE_EMBED,
        description="Embeddings of up to 256 texts (request/reply).",
        sends=inference.EmbedRequest,
        replies=(inference.EmbedResponse, Error),
    ),
    Channel(
        address=subjects.INFERENCE_MODELS,
        description="The models this inference replica serves (request/reply).",
        sends=inference.ModelsRequest,
        replies=(inference.ModelsResponse, Error),
    ),
    Channel(
        address="usage.{tenant}",
        description="One usage event per inference request; stream USAGE, "
        "Nats-Msg-Id = request id (duplicates within the window are dropped).",
        sends=usage.UsageEvent,
    ),
)


def message_schema(message: type[msgspec.Struct]) -> dict[str, Any]:
    """A self-contained JSON Schema (2020-12) of one message."""
    schema = msgspec.json.schema(message)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = message.__name__
    return schema
