"""recall and remember: the agent's long-term memory, kept by the memory service.

Both ask `memory.recall` / `memory.store` over NATS in the run's scope. recall looks as
widely as the run may see: the tenant's memories, and those of the run's repository, agent
and user. remember stores in the tenant, the run's repository and user, but not the agent:
what one agent learnt (a fix, a convention) is there for the tenant's other agents too.
Whatever goes wrong on the memory side is a ToolError: the model reads why and goes on.
"""

from __future__ import annotations

import hashlib
import re
from typing import Annotated, TypeVar

import msgspec
from msgspec import Meta

from revo_agent_runner.tools.base import ToolContext, ToolError, ToolSpec
from revo_contracts import subjects
from revo_contracts.memory import (
    SCOPE_VALUE_PATTERN,
    Memory,
    MemoryFilter,
    MemoryInput,
    MemoryKind,
    MemoryRecallRequest,
    MemoryRecallResponse,
    MemoryScope,
    MemoryStoreRequest,
    MemoryStoreResponse,
    StoredMemory,
    Tag,
)
from revo_core.bus import Bus
from revo_core.errors import BusUnavailable, RequestTimeout, ServiceError
from revo_core.logging import get_logger

T = TypeVar("T")
log = get_logger("revo.agent_runner.memory")

# What recall answers when nothing passed; the run loop adds no context then.
NO_MEMORIES = "no memories match"
MAX_QUERY_CHARS = 2000
MAX_MEMORY_CHARS = 2000
# What the memory contract accepts as a scope value; anything else is hashed into one.
_SCOPE_VALUE = re.compile(SCOPE_VALUE_PATTERN)
_URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_USER_INFO = re.compile(r"^[^@/]+@")  # git@, ci-bot:token@
_SCP_HOST = re.compile(r"^([^:/]+):(?!\d+(/|$))")  # github.com:acme/api, not host:8443/...


class RecallArgs(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    query: Annotated[
        str,
        Meta(
            min_length=1,
            max_length=MAX_QUERY_CHARS,
            description="What to look for: a question, an error message, a test name.",
        ),
    ]
    kinds: Annotated[
        list[MemoryKind],
        Meta(description="Only these kinds: fact, preference, fix, failure_signature, summary."),
    ] = []
    tags: Annotated[list[Tag], Meta(description="Only memories carrying every one of these.")] = []
    top_k: Annotated[int, Meta(ge=1, le=20, description="How many memories at most.")] = 5
    min_score: Annotated[
        float, Meta(ge=0.0, le=1.0, description="Leave out memories scoring below this (0-1).")
    ] = 0.0
    token_budget: Annotated[
        int, Meta(ge=1, le=4000, description="At most this many tokens of memory text.")
    ] = 1000


class RememberArgs(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    text: Annotated[
        str,
        Meta(
            min_length=1,
            max_length=MAX_MEMORY_CHARS,
            description="One self-contained statement worth knowing next time.",
        ),
    ]
    kind: Annotated[
        MemoryKind,
        Meta(description="fact, preference, fix, failure_signature or summary."),
    ] = "fact"
    tags: Annotated[
        list[Tag], Meta(max_length=8, description="Short labels to find it by, e.g. 'ci'.")
    ] = []


# -- the scopes -------------------------------------------------------------------------------


def recall_scope(ctx: ToolContext) -> MemoryScope:
    return MemoryScope(
        tenant=ctx.tenant,
        repository=_repository(ctx.repository),
        agent=scope_value(ctx.agent) if ctx.agent else None,
        user=scope_value(ctx.user) if ctx.user else None,
    )


def remember_scope(ctx: ToolContext) -> MemoryScope:
    return MemoryScope(
        tenant=ctx.tenant,
        repository=_repository(ctx.repository),
        user=scope_value(ctx.user) if ctx.user else None,
    )


def _repository(repo: str | None) -> str | None:
    """The same repository however it was named: 'https://github.com/acme/api.git' and
    'git@github.com:acme/api' are both 'github.com/acme/api'."""
    if not repo:
        return None
    name = _USER_INFO.sub("", _URL_SCHEME.sub("", repo.strip()))
    name = _SCP_HOST.sub(r"\1/", name)
    name = name.rstrip("/").removesuffix(".git").rstrip("/")
    return scope_value(name) if name else None


def scope_value(value: str) -> str:
    """`value` itself where the memory contract accepts it, else a stable digest of it (a
    subject such as 'auth0|123' still names one user, never another)."""
    if _SCOPE_VALUE.match(value):
        return value
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()[:40]


# -- recall -----------------------------------------------------------------------------------


async def recall(ctx: ToolContext, args: RecallArgs) -> str:
    memory_filter = MemoryFilter(kinds=list(args.kinds), tags=list(args.tags))
    request = MemoryRecallRequest(
        scope=recall_scope(ctx),
        query=args.query,
        filter=memory_filter if args.kinds or args.tags else None,
        top_k=args.top_k,
        min_score=args.min_score,
        token_budget=args.token_budget,
        request_id=ctx.call_id,
    )
    response = await _ask(
        ctx, subjects.MEMORY_RECALL, request, MemoryRecallResponse, "nothing was recalled"
    )
    return render_recalled(response)


def render_recalled(response: MemoryRecallResponse) -> str:
    if not response.memories:
        return f"{NO_MEMORIES} (none scored high enough)"
    count = len(response.memories)
    lines = [f"{count} {'memory' if count == 1 else 'memories, best first'}:"]
    lines += [_line(number, memory) for number, memory in enumerate(response.memories, 1)]
    if response.truncated:
        lines.append("[more matched but did not fit the token budget]")
    return "\n".join(lines)


def _line(number: int, memory: Memory) -> str:
    score = f", score {memory.score:.2f}" if memory.score is not None else ""
    tags = f" (tags: {', '.join(memory.tags)})" if memory.tags else ""
    return f"{number}. [{memory.kind}{score}] {' '.join(memory.text.split())}{tags}"


# -- remember ---------------------------------------------------------------------------------


async def remember(ctx: ToolContext, args: RememberArgs) -> str:
    request = MemoryStoreRequest(
        scope=remember_scope(ctx),
        memories=[
            MemoryInput(text=args.text, kind=args.kind, tags=list(args.tags), source_run=ctx.run_id)
        ],
        request_id=ctx.call_id,
    )
    response = await _ask(
        ctx, subjects.MEMORY_STORE, request, MemoryStoreResponse, "nothing was remembered"
    )
    return _stored(response.stored[0])


def _stored(stored: StoredMemory) -> str:
    similar = f" (similarity {stored.similarity:.2f})" if stored.similarity is not None else ""
    match stored.action:
        case "created":
            return f"remembered as a new memory ({stored.id})"
        case "updated":
            return (
                f"remembered: it said the same as memory {stored.id}{similar}, "
                f"which is now version {stored.version}"
            )
        case _:
            return f"already remembered, unchanged: memory {stored.id}{similar}"


# -- the call ---------------------------------------------------------------------------------


async def _ask(
    ctx: ToolContext, subject: str, request: object, reply_type: type[T], outcome: str
) -> T:
    """The memory service's reply; any failure is a ToolError saying why, then `outcome`."""
    try:
        return await _request(ctx, subject, request, reply_type)
    except ToolError as exc:
        log.warning("memory call failed", subject=subject, run_id=ctx.run_id, error=str(exc))
        raise ToolError(f"{exc}; {outcome}") from None


async def _request(ctx: ToolContext, subject: str, request: object, reply_type: type[T]) -> T:
    bus: Bus | None = ctx.bus
    if bus is None:
        raise ToolError("memory is not available to this runner")
    try:
        return await bus.request(subject, request, reply_type, timeout=ctx.request_timeout_s)
    except BusUnavailable:
        raise ToolError(f"the memory service is not running (no responder on {subject})") from None
    except RequestTimeout:
        raise ToolError(
            f"the memory service did not answer within {ctx.request_timeout_s:g} s"
        ) from None
    except ServiceError as exc:
        raise ToolError(f"memory service: {exc}") from None


RECALL = ToolSpec(
    name="recall",
    description=(
        "Look up what was learnt in earlier runs (fixes, facts, conventions, the user's "
        "preferences) that is relevant to a query. Returns memories with scores, best first."
    ),
    args_type=RecallArgs,
    fn=recall,
)

REMEMBER = ToolSpec(
    name="remember",
    description=(
        "Keep one thing worth knowing in later runs: a fix that worked, a fact about the "
        "code, a team convention, the user's preference. A repeat of a memory updates it."
    ),
    args_type=RememberArgs,
    fn=remember,
    # Not marked as a side effect: storing the same text again changes nothing (the memory
    # service merges it into the memory it repeats), so a resumed run may redo the call.
)
