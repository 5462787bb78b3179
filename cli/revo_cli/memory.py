"""`revo memory add|search|forget|history`: the memory service from the terminal.

Exit status: 0 done, 1 the service refused or failed, 2 bad usage or no service to talk to.
"""

from __future__ import annotations

import argparse
import asyncio

import msgspec

from revo_cli.service_call import EXIT_OK, EXIT_USAGE, call_service, fail
from revo_contracts import subjects
from revo_contracts.memory import (
    MEMORY_KINDS,
    MemoryFilter,
    MemoryForgetRequest,
    MemoryForgetResponse,
    MemoryHistoryRequest,
    MemoryHistoryResponse,
    MemoryInput,
    MemoryRecallRequest,
    MemoryRecallResponse,
    MemoryScope,
    MemoryStoreRequest,
    MemoryStoreResponse,
)
from revo_core.bus import Bus


def add_memory_parser(commands: argparse._SubParsersAction) -> None:
    memory = commands.add_parser("memory", help="store, search and forget memories")
    actions = memory.add_subparsers(dest="memory_command", required=True)
    add = actions.add_parser("add", help="store a memory (merged into a similar one)")
    add.add_argument("text")
    add.add_argument("--kind", choices=MEMORY_KINDS, default="fact")
    add.add_argument("--tag", action="append", default=[], help="repeat for several")
    add.add_argument("--source-run", help="the run that learnt it")
    search = actions.add_parser("search", help="recall memories relevant to a query")
    search.add_argument("query")
    search.add_argument("--top-k", type=int, default=10)
    search.add_argument("--min-score", type=float, default=0.0)
    search.add_argument("--budget", type=int, help="tokens of memory text at most")
    forget = actions.add_parser("forget", help="delete memories by id, or by --kind/--tag/--all")
    forget.add_argument("ids", nargs="*")
    forget.add_argument("--all", action="store_true", help="every memory of the scope")
    history = actions.add_parser("history", help="every version of one memory")
    history.add_argument("id")
    for action in (add, search, forget, history):
        action.add_argument("--tenant", default="default")
        action.add_argument("--repo", help="scope: a repository")
        action.add_argument("--agent", help="scope: an agent")
        action.add_argument("--user", help="scope: a user")
        action.add_argument("--json", action="store_true", help="print the reply as JSON")
    for action in (search, forget):
        action.add_argument("--kind", action="append", choices=MEMORY_KINDS, default=[])
        action.add_argument("--tag", action="append", default=[])


def memory_command(args: argparse.Namespace, nats_url: str) -> int:
    try:
        subject, request, reply_type, show = _build(args)
    except (msgspec.ValidationError, ValueError) as exc:
        return fail(f"error: {exc}", EXIT_USAGE)
    return asyncio.run(_ask(nats_url, subject, request, reply_type, show, args.json))


def _build(args: argparse.Namespace):
    scope = msgspec.convert(
        {"tenant": args.tenant, "repository": args.repo, "agent": args.agent, "user": args.user},
        MemoryScope,
    )
    if args.memory_command == "add":
        memory = MemoryInput(text=args.text, kind=args.kind, tags=args.tag,
                             source_run=args.source_run)  # fmt: skip
        request = MemoryStoreRequest(scope=scope, memories=[memory])
        return subjects.MEMORY_STORE, request, MemoryStoreResponse, stored_lines
    if args.memory_command == "search":
        request = MemoryRecallRequest(
            scope=scope, query=args.query, filter=_filter(args), top_k=args.top_k,
            min_score=args.min_score, token_budget=args.budget,
        )  # fmt: skip
        return subjects.MEMORY_RECALL, request, MemoryRecallResponse, recall_lines
    if args.memory_command == "forget":
        if not args.ids and not (args.all or args.kind or args.tag):
            raise ValueError("name ids to forget, or --kind/--tag, or --all")
        filter_ = _filter(args) if (args.all or args.kind or args.tag) else None
        request = MemoryForgetRequest(scope=scope, ids=args.ids, filter=filter_)
        return subjects.MEMORY_FORGET, request, MemoryForgetResponse, forgot_lines
    request = MemoryHistoryRequest(scope=scope, id=args.id)
    return subjects.MEMORY_HISTORY, request, MemoryHistoryResponse, history_lines


def _filter(args: argparse.Namespace) -> MemoryFilter:
    return MemoryFilter(kinds=args.kind, tags=args.tag)


async def _ask(nats_url: str, subject: str, request, reply_type, show, as_json: bool) -> int:
    async def command(bus: Bus) -> int:
        reply = await bus.request(subject, request, reply_type, timeout=30)
        print(msgspec.json.encode(reply).decode() if as_json else "\n".join(show(reply)))
        return EXIT_OK

    return await call_service(nats_url, "memory service", command)


def stored_lines(reply: MemoryStoreResponse) -> list[str]:
    lines = []
    for item in reply.stored:
        merged = f" (similarity {item.similarity:.3f})" if item.similarity is not None else ""
        lines.append(f"{item.action} {item.id} v{item.version}{merged}")
    return lines


def recall_lines(reply: MemoryRecallResponse) -> list[str]:
    if not reply.memories:
        return ["no memories found"]
    lines = []
    for m in reply.memories:
        tags = f" [{', '.join(m.tags)}]" if m.tags else ""
        lines.append(f"{m.score:.3f}  {m.kind:<17} {m.id}{tags}\n       {m.text}")
    more = ", more left out to fit the budget" if reply.truncated else ""
    lines.append(f"{len(reply.memories)} memories, {reply.tokens} tokens{more}")
    return lines


def forgot_lines(reply: MemoryForgetResponse) -> list[str]:
    return [*reply.ids, f"forgot {reply.forgotten} memories"]


def history_lines(reply: MemoryHistoryResponse) -> list[str]:
    lines = [f"memory {reply.id}"]
    for v in reply.versions:
        merged = f", similarity {v.similarity:.3f}" if v.similarity is not None else ""
        lines.append(f"  v{v.version} {v.action} ({v.kind}{merged}): {v.text}")
    return lines
