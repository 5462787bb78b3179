"""search_code: a ripgrep-like regex search over the workspace.

The walk is Python (one behaviour everywhere: rg is not on every runner, and the same
symlink rules as the other tools); the matching is RE2, as in ripgrep: linear in the text
whatever the pattern. Python's `re` backtracks, so a pattern the model writes such as
`(a+)+$` on one long line would run for hours while holding the GIL, freezing the runner's
event loop and its heartbeats. RE2 refuses the few constructs it cannot run in linear time
(backreferences, lookaround), and the model is told so.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import msgspec
import re2
from msgspec import Meta

from revo_agent_runner.tools.base import ToolContext, ToolError, ToolSpec, join_capped
from revo_agent_runner.tools.paths import (
    display_path,
    is_binary,
    matches_glob,
    resolve_inside,
    walk_files,
)

# Larger files are generated or data, not code worth reading match by match.
MAX_FILE_BYTES = 1_000_000
MAX_MATCH_CHARS = 200


class SearchCodeArgs(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    pattern: Annotated[
        str,
        Meta(
            min_length=1,
            description="A regular expression (RE2 syntax: as Python's, "
            "without backreferences or lookaround).",
        ),
    ]
    path: Annotated[
        str, Meta(description="File or directory to search, relative to the workspace root.")
    ] = "."
    glob: Annotated[
        str | None, Meta(description="Only search files whose path or name matches, e.g. '*.py'.")
    ] = None
    ignore_case: Annotated[bool, Meta(description="Match regardless of case.")] = False
    max_results: Annotated[int, Meta(ge=1, le=500, description="How many matches to show.")] = 50


async def search_code(ctx: ToolContext, args: SearchCodeArgs) -> str:
    return await asyncio.to_thread(_search_code, ctx.workspace, args)


def _search_code(root: Path, args: SearchCodeArgs) -> str:
    regex = _compile(args.pattern, args.ignore_case)
    start = resolve_inside(root, args.path)
    if not start.exists():
        raise ToolError(f"no such file or directory: {args.path}")
    shown: list[str] = []
    total = 0
    for match in _matches(root, start, regex, args.glob):
        total += 1
        if len(shown) < args.max_results:
            shown.append(match)
    if not shown:
        return f"no matches for /{args.pattern}/"
    return join_capped(shown, "matches", more=total - len(shown))


def _compile(pattern: str, ignore_case: bool) -> Any:
    options = re2.Options()
    options.case_sensitive = not ignore_case
    options.log_errors = False  # the model is told; the runner's log need not be
    try:
        return re2.compile(pattern, options=options)
    except re2.error as exc:
        reason = exc.args[0].decode(errors="replace") if exc.args else "invalid"
        raise ToolError(
            f"invalid regex /{pattern}/: {reason} (RE2 syntax: no backreferences or lookaround)"
        ) from None


def _matches(root: Path, start: Path, regex: Any, glob: str | None) -> Iterator[str]:
    for path in walk_files(start):
        name = display_path(root, path)
        if matches_glob(name, glob) and _searchable(path):
            for number, text in _matching_lines(path, regex):
                yield f"{name}:{number}: {text}"


def _searchable(path: Path) -> bool:
    try:
        return path.stat().st_size <= MAX_FILE_BYTES and not is_binary(path)
    except OSError:  # unreadable: skip it, as rg does, rather than fail the whole search
        return False


def _matching_lines(path: Path, regex: Any) -> Iterator[tuple[int, str]]:
    with path.open(encoding="utf-8", errors="replace") as stream:
        for number, line in enumerate(stream, start=1):
            if regex.search(line):
                yield number, line.strip()[:MAX_MATCH_CHARS]


SEARCH_CODE = ToolSpec(
    name="search_code",
    description=(
        "Search the workspace for a regular expression (RE2), like ripgrep. "
        "Returns 'file:line: text' for each matching line."
    ),
    args_type=SearchCodeArgs,
    fn=search_code,
)
