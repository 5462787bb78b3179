"""Reading and writing the frames of the WebSocket chat (revo_contracts.chat).

A bad frame is answered, never fatal: `decode_client_frame` raises `BadFrame` with a
message naming the problem, and the socket stays open.
"""

from __future__ import annotations

import re

import msgspec

from revo_contracts.chat import ChatClientFrame, ChatError, ChatServerFrame, ChatUserMessage

DEFAULT_AGENT = "assistant"
# "@code-analyst explain this" addresses the agent code-analyst with "explain this".
_AGENT_PREFIX = re.compile(r"^@([a-z0-9][a-z0-9_-]{0,63}) +")

_decoder = msgspec.json.Decoder(ChatClientFrame)
# msgspec decodes nested arrays and objects by recursion: it refuses depths Python's stack
# cannot hold with a RecursionError, which is the sender's fault like any bad JSON.
DEEP_JSON = "frame is not valid JSON: nested too deep"
_encoder = msgspec.json.Encoder()


class BadFrame(Exception):
    pass


def decode_client_frame(text: str) -> ChatClientFrame:
    try:
        return _decoder.decode(text)
    except msgspec.ValidationError as exc:
        raise BadFrame(f"invalid frame: {exc}") from None
    except msgspec.DecodeError as exc:
        raise BadFrame(f"frame is not valid JSON: {exc}") from None
    except RecursionError:
        raise BadFrame(DEEP_JSON) from None


def encode(frame: ChatServerFrame) -> str:
    return _encoder.encode(frame).decode()


def error_frame(code: str, message: str) -> str:
    return encode(ChatError(code=code, message=message))


def agent_and_content(message: ChatUserMessage) -> tuple[str, str]:
    """The agent a message goes to and its text, without an `@agent ` prefix."""
    if message.agent is not None:
        return message.agent, message.content
    prefix = _AGENT_PREFIX.match(message.content)
    if prefix is None or len(message.content) == prefix.end():
        return DEFAULT_AGENT, message.content
    return prefix.group(1), message.content[prefix.end() :]
