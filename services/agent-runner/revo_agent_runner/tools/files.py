"""read_file, list_files and write_file: how the model sees the workspace, and changes it."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Annotated

import msgspec
from msgspec import Meta

from revo_agent_runner.tools.base import ToolContext, ToolError, ToolSpec, join_capped
from revo_agent_runner.tools.paths import (
    display_path,
    is_binary,
    matches_glob,
    resolve_inside,
    walk_entries,
)

MAX_LINE_CHARS = 1000


class ReadFileArgs(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    path: Annotated[str, Meta(description="File path relative to the workspace root.")]
    start_line: Annotated[int, Meta(ge=1, description="First line to show (1-based).")] = 1
    max_lines: Annotated[int, Meta(ge=1, le=2000, description="How many lines to show.")] = 200


class ListFilesArgs(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    path: Annotated[str, Meta(description="Directory to list, relative to the root.")] = "."
    pattern: Annotated[
        str | None,
        Meta(description="Glob on the relative path or the file name, e.g. '*.py'."),
    ] = None
    max_entries: Annotated[int, Meta(ge=1, le=2000, description="How many entries to show.")] = 200


class WriteFileArgs(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    path: Annotated[str, Meta(description="File path relative to the workspace root.")]
    content: Annotated[str, Meta(description="The text to write.")]
    append: Annotated[
        bool, Meta(description="Add to the end of the file instead of replacing it.")
    ] = False


async def read_file(ctx: ToolContext, args: ReadFileArgs) -> str:
    return await asyncio.to_thread(_read_file, ctx.workspace, args)


async def list_files(ctx: ToolContext, args: ListFilesArgs) -> str:
    return await asyncio.to_thread(_list_files, ctx.workspace, args)


async def write_file(ctx: ToolContext, args: WriteFileArgs) -> str:
    return await asyncio.to_thread(_write_file, ctx.workspace, args)


def _read_file(root: Path, args: ReadFileArgs) -> str:
    path = resolve_inside(root, args.path)
    if path.is_dir():
        raise ToolError(f"'{args.path}' is a directory; use list_files")
    if not path.is_file():
        raise ToolError(f"no such file: {args.path}")
    if is_binary(path):
        raise ToolError(f"'{args.path}' is a binary file")
    shown, total = _numbered_lines(path, args.start_line, args.max_lines)
    if total and args.start_line > total:
        raise ToolError(
            f"start_line {args.start_line} is past the end of {args.path} ({total} lines)"
        )
    name = display_path(root, path)
    if not shown:
        return f"{name}: 0 lines (empty file)"
    header = f"{name}: {total} lines, showing {args.start_line}-{args.start_line + len(shown) - 1}"
    return join_capped([header, *shown], "lines")


def _numbered_lines(path: Path, start: int, count: int) -> tuple[list[str], int]:
    """The requested lines as "N: text", and the file's total line count (read as a stream)."""
    shown: list[str] = []
    total = 0
    with path.open(encoding="utf-8", errors="replace") as stream:
        for number, line in enumerate(stream, start=1):
            total = number
            if start <= number < start + count:
                text = _trim_line(line.rstrip("\n"))
                shown.append(f"{number}: {text}")
    return shown, total


def _trim_line(text: str) -> str:
    # One minified line must not crowd out the rest of the page.
    if len(text) <= MAX_LINE_CHARS:
        return text
    return f"{text[:MAX_LINE_CHARS]} [line truncated: {len(text) - MAX_LINE_CHARS} more characters]"


def _list_files(root: Path, args: ListFilesArgs) -> str:
    start = resolve_inside(root, args.path)
    if not start.exists():
        raise ToolError(f"no such directory: {args.path}")
    if start.is_file():
        return display_path(root, start)
    names = [
        name
        for name in (_entry_name(root, entry) for entry in walk_entries(start))
        if matches_glob(name.rstrip("/"), args.pattern)
    ]
    if not names:
        return "no matching entries" if args.pattern else "empty directory"
    shown = names[: args.max_entries]
    return join_capped(shown, "entries", more=len(names) - len(shown))


def _entry_name(root: Path, entry: os.DirEntry[str]) -> str:
    name = display_path(root, Path(entry.path))
    # A symlink is never entered, so it shows without the directory slash.
    return f"{name}/" if entry.is_dir(follow_symlinks=False) else name


def _write_file(root: Path, args: WriteFileArgs) -> str:
    path = resolve_inside(root, args.path)
    if (root / args.path).is_symlink():
        raise ToolError(f"refusing to write through the symlink '{args.path}'")
    if path.is_dir():
        raise ToolError(f"'{args.path}' is a directory")
    path.parent.mkdir(parents=True, exist_ok=True)
    data = args.content.encode()
    with path.open("ab" if args.append else "wb") as stream:
        stream.write(data)
    verb = "appended" if args.append else "wrote"
    return f"{verb} {len(data)} bytes to {display_path(root, path)}"


READ_FILE = ToolSpec(
    name="read_file",
    description=(
        "Read a text file from the workspace. Lines come prefixed with their number; "
        "use start_line and max_lines to page through long files."
    ),
    args_type=ReadFileArgs,
    fn=read_file,
)

LIST_FILES = ToolSpec(
    name="list_files",
    description=(
        "List files and directories (ending with '/') under a workspace directory, "
        "recursively, optionally filtered by a glob."
    ),
    args_type=ListFilesArgs,
    fn=list_files,
)

WRITE_FILE = ToolSpec(
    name="write_file",
    description=(
        "Create or overwrite a file in the workspace (parent directories are created), "
        "or append to it."
    ),
    args_type=WriteFileArgs,
    fn=write_file,
    side_effects=True,
)
