"""Keeping every tool inside the run's workspace.

A path from the model is resolved with symlinks followed and must land inside the workspace
root; walks never descend through a symlink, so a link pointing outside cannot leak a byte.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from fnmatch import fnmatch
from pathlib import Path

from revo_agent_runner.tools.base import ToolError
from revo_agent_runner.workspace import READY_MARKER

# Bookkeeping, not the user's code: never listed or searched.
SKIPPED_NAMES = frozenset({".git", READY_MARKER})
# Enough to tell text from binary, as git and ripgrep do.
BINARY_SNIFF_BYTES = 8192


class PathOutsideWorkspace(ToolError):
    """The model asked for a path that is (or resolves to) somewhere outside the workspace."""


def resolve_inside(root: Path, relative: str) -> Path:
    """The real location of `relative` under `root`, or PathOutsideWorkspace."""
    if "\x00" in relative:
        raise PathOutsideWorkspace("path contains a NUL byte")
    if relative.startswith("~") or Path(relative).is_absolute():
        raise PathOutsideWorkspace(f"path '{relative}' is outside the workspace")
    real_root = root.resolve()
    resolved = (real_root / relative).resolve()
    if not resolved.is_relative_to(real_root):
        raise PathOutsideWorkspace(f"path '{relative}' is outside the workspace")
    return resolved


def display_path(root: Path, resolved: Path) -> str:
    """How the model names a resolved path: relative to the workspace root, "." for the root."""
    return resolved.relative_to(root.resolve()).as_posix()


def walk_entries(directory: Path) -> Iterator[os.DirEntry[str]]:
    """Every entry under `directory`, depth first in name order; symlinks listed, not entered."""
    try:
        entries = sorted(os.scandir(directory), key=lambda entry: entry.name)
    except (NotADirectoryError, PermissionError, FileNotFoundError):
        return
    for entry in entries:
        if entry.name in SKIPPED_NAMES:
            continue
        yield entry
        if entry.is_dir(follow_symlinks=False):
            yield from walk_entries(Path(entry.path))


def walk_files(start: Path) -> Iterator[Path]:
    """Regular files at or under `start`, never through a symlink."""
    if start.is_file():
        yield start
        return
    for entry in walk_entries(start):
        if entry.is_file(follow_symlinks=False):
            yield Path(entry.path)


def matches_glob(relative: str, glob: str | None) -> bool:
    """A glob matches the path relative to the workspace, or the file's name alone."""
    if glob is None:
        return True
    return fnmatch(relative, glob) or fnmatch(relative.rsplit("/", 1)[-1], glob)


def is_binary(path: Path) -> bool:
    with path.open("rb") as stream:
        return b"\x00" in stream.read(BINARY_SNIFF_BYTES)
