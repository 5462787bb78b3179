"""The WebSocket chat protocol of the gateway (`GET /v1/ws`): JSON text frames.

Every frame names itself in `type` (msgspec tagged unions). A client joins or resumes a
session with `hello`, sends `message`s, and gets the session's numbered `item`s (stored,
replayable from any seq) and the live text `token`s of its runs (neither numbered nor
stored: a client that misses them gets the whole answer in the `assistant` item).
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from revo_contracts.runs import AgentName, RunEvent, RunId

TRACEPARENT_PATTERN = r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$"
SessionId = Annotated[str, Meta(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
# An item's number in its session: Postgres keeps it as a 4-byte integer.
Seq = Annotated[int, Meta(ge=0, le=2**31 - 1)]


class ChatFrame(msgspec.Struct, kw_only=True, tag_field="type", omit_defaults=True):
    pass


# -- client -> server ---------------------------------------------------------------------


class ChatHello(ChatFrame, tag="hello"):
    """Join a session (a new one without `session_id`), receiving its items after
    `last_seq`; optional: the first `message` opens a new session."""

    session_id: SessionId | None = None
    last_seq: Seq = 0


class ChatUserMessage(ChatFrame, tag="message"):
    """A user message; `@name ` before the text picks the agent when `agent` is absent."""

    # No NUL: Postgres's text holds any character but that one.
    content: Annotated[str, Meta(min_length=1, pattern=r"^[^\x00]*$")]
    agent: AgentName | None = None
    # W3C trace context: the message's run joins the client's trace. Without it, each
    # message starts a trace of its own (linked to the socket's).
    traceparent: Annotated[str, Meta(pattern=TRACEPARENT_PATTERN)] | None = None


class ChatCancel(ChatFrame, tag="cancel"):
    """Cancel the session's running run, or the named run of the session."""

    run_id: RunId | None = None


class ChatPing(ChatFrame, tag="ping"):
    pass


ChatClientFrame = ChatHello | ChatUserMessage | ChatCancel | ChatPing


# -- server -> client ---------------------------------------------------------------------


class ChatSession(ChatFrame, tag="session"):
    """The session the socket is in, and the seq of its latest stored item."""

    session_id: str
    last_seq: int  # required, so a 0 is sent too (defaults are omitted)


ItemKind = Literal["user", "assistant", "event"]


class ChatItem(ChatFrame, tag="item"):
    """One stored item of a session, numbered per session from 1."""

    seq: Annotated[int, Meta(ge=1)]
    kind: ItemKind
    run_id: str | None = None
    agent: str | None = None
    content: str | None = None
    event: RunEvent | None = None


class ChatToken(ChatFrame, tag="token"):
    """A text token of a run as the model writes it (not numbered, not stored)."""

    run_id: str
    agent: str
    delta: str


class ChatError(ChatFrame, tag="error"):
    # invalid_request, not_found, rate_limited, slow_consumer, or a run's error code.
    code: str
    message: str


class ChatPong(ChatFrame, tag="pong"):
    pass


ChatServerFrame = ChatSession | ChatItem | ChatToken | ChatError | ChatPong
