"""Which ruff configuration of a workspace the linter may use.

A repository's ruff config is the team's own rules, so run_linter follows it; but the
repository is untrusted input. Left to itself ruff would also read configs above the
workspace (the runner's own directories, the user's `~/.config/ruff`) and follow `extend`
to any file on the machine, quoting a file that is not TOML in its error message. So ruff
runs with `--isolated` (no config at all) or `--config` naming one file found here: the
closest config between the lint target and the workspace root, used only when it and every
file its `extend` chain names lie inside the workspace, and no path it sets points outside.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# ruff's own order when a directory holds more than one.
CONFIG_NAMES = (".ruff.toml", "ruff.toml", "pyproject.toml")
# Settings naming paths ruff reads or writes (`extend` is followed separately).
PATH_SETTINGS = ("src", "cache-dir", "namespace-packages")
MAX_EXTENDS = 8


@dataclass(frozen=True)
class RuffConfig:
    """The config to pass with `--config` (None: run `--isolated`), and why one found was
    not used."""

    path: Path | None
    note: str | None = None


class UnsafeConfig(Exception):
    pass


def workspace_config(root: Path, target: Path) -> RuffConfig:
    found = _closest_config(root.resolve(), target)
    if found is None:
        return RuffConfig(None)
    name = found.relative_to(root.resolve()).as_posix()
    try:
        _vet(root.resolve(), found, depth=0)
    except UnsafeConfig as exc:
        return RuffConfig(None, f"the repository's ruff config {name} was not used: {exc}")
    return RuffConfig(found)


def _closest_config(root: Path, target: Path) -> Path | None:
    directory = target.resolve()
    if not directory.is_dir():
        directory = directory.parent
    while directory.is_relative_to(root):
        for name in CONFIG_NAMES:
            candidate = directory / name
            if candidate.is_file() and _is_ruff_config(root, candidate):
                return candidate
        if directory == root:
            break
        directory = directory.parent
    return None


def _is_ruff_config(root: Path, path: Path) -> bool:
    """pyproject.toml only counts with a [tool.ruff] table, as for ruff itself."""
    if path.name != "pyproject.toml":
        return True
    try:
        return _settings(root, path) is not None
    except UnsafeConfig:
        return True  # unreadable or outside: vetting says why


def _vet(root: Path, path: Path, depth: int) -> None:
    if depth > MAX_EXTENDS:
        raise UnsafeConfig(f"`extend` goes more than {MAX_EXTENDS} files deep")
    settings = _settings(root, path) or {}
    for key in PATH_SETTINGS:
        for value in _strings(settings.get(key)):
            _inside(root, path.parent, value, key)
    extend = settings.get("extend")
    if extend is not None:
        if not isinstance(extend, str):
            raise UnsafeConfig("`extend` is not a path")
        _vet(root, _inside(root, path.parent, extend, "extend"), depth + 1)


def _settings(root: Path, path: Path) -> dict[str, Any] | None:
    if not path.resolve().is_relative_to(root):
        raise UnsafeConfig(f"{path.name} links outside the workspace")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UnsafeConfig(f"{path.name} could not be read: {exc}") from None
    if path.name == "pyproject.toml":
        ruff = data.get("tool", {}).get("ruff")
        return ruff if isinstance(ruff, dict) else None
    return data


def _inside(root: Path, base: Path, value: str, key: str) -> Path:
    # ruff expands `~` and environment variables in these paths: neither may steer it.
    if value.startswith("~") or "$" in value:
        raise UnsafeConfig(f"`{key}` uses ~ or an environment variable")
    resolved = (base / value).resolve()
    if not resolved.is_relative_to(root):
        raise UnsafeConfig(f"`{key}` points outside the workspace")
    return resolved


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [item for item in value if isinstance(item, str)]
    return []
