"""The per-run workspace: a directory holding the run's checkout, which its tools work in.

`prepare_workspace` fills `<root>/<run_id>` from the run's `Workspace` spec (a local git
repository, a plain directory, or a URL) and writes a marker last. A resumed run finds the
marker and keeps what it already wrote; a directory without it was cut off mid-prepare.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from pathlib import Path

from revo_contracts.runs import Workspace

READY_MARKER = ".revo-workspace-ready"
GIT_TIMEOUT_S = 300.0
# Recent history is enough to read and blame; a full clone only when a commit sha is asked for.
CLONE_DEPTH = 50
# The run id becomes a directory name: the contract's pattern, checked again before any rmtree.
_RUN_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_SCP_LIKE_URL = re.compile(r"^[\w.-]+@[\w.-]+:")


class WorkspaceError(Exception):
    """Why a workspace could not be prepared; `code` is the run's error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


async def prepare_workspace(root_dir: Path, run_id: str, spec: Workspace | None) -> Path:
    directory = workspace_path(root_dir, run_id)
    if (directory / READY_MARKER).is_file():
        return directory
    if spec is None:
        # Empty: nothing can be half-prepared, so no marker; a resumed run keeps its files.
        directory.mkdir(parents=True, exist_ok=True)
        return directory
    await asyncio.to_thread(_empty_directory, directory)
    try:
        await _fill(directory, spec)
    except WorkspaceError:
        await asyncio.to_thread(shutil.rmtree, directory, True)
        raise
    await asyncio.to_thread(_mark_ready, directory)
    return directory


def remove_workspace(root_dir: Path, run_id: str) -> None:
    directory = workspace_path(root_dir, run_id)
    try:
        directory.rmdir()  # the common case of a run without a repository: still empty
    except OSError:
        shutil.rmtree(directory, ignore_errors=True)


def workspace_path(root_dir: Path, run_id: str) -> Path:
    if not _RUN_ID.match(run_id):
        raise WorkspaceError("invalid_request", f"run id '{run_id}' cannot name a workspace")
    return root_dir / run_id


async def _fill(directory: Path, spec: Workspace | None) -> None:
    if spec is None:
        return
    _check_ref(spec.ref)
    if is_url(spec.repo):
        await _clone_url(spec.repo, spec.ref, directory)
        return
    source, is_git = await asyncio.to_thread(_local_source, spec.repo)
    if is_git:
        await _clone_local(source, spec.ref, directory)
    elif spec.ref is not None:
        raise WorkspaceError(
            "invalid_request",
            f"workspace ref '{spec.ref}' given but '{spec.repo}' is not a git repository",
        )
    else:
        await asyncio.to_thread(_copy_tree, source, directory)


def _local_source(repo: str) -> tuple[Path, bool]:
    """The local directory to start from, and whether it is a git repository."""
    source = Path(repo).expanduser()
    if not source.exists():
        raise WorkspaceError("not_found", f"workspace repository '{repo}' does not exist")
    if not source.is_dir():
        raise WorkspaceError("invalid_request", f"workspace repository '{repo}' is a file")
    return source, (source / ".git").exists()


def is_url(repo: str) -> bool:
    return "://" in repo or bool(_SCP_LIKE_URL.match(repo))


def _check_ref(ref: str | None) -> None:
    # A ref starting with "-" would reach git as an option.
    if ref is not None and (not ref or ref.startswith("-")):
        raise WorkspaceError("invalid_request", f"workspace ref '{ref}' is not a valid git ref")


async def _clone_local(source: Path, ref: str | None, directory: Path) -> None:
    await _git_or_fail("clone", "--quiet", "--no-hardlinks", "--", str(source), str(directory))
    if ref is not None:
        await _checkout(directory, ref, str(source))


async def _clone_url(url: str, ref: str | None, directory: Path) -> None:
    shallow = ["clone", "--quiet", f"--depth={CLONE_DEPTH}"]
    if ref is None:
        await _git_or_fail(*shallow, "--", url, str(directory))
        return
    if await _git(*shallow, f"--branch={ref}", "--", url, str(directory)) is None:
        return
    # --branch takes branch and tag names only; a commit sha needs the whole history.
    await asyncio.to_thread(_empty_directory, directory)
    await _git_or_fail("clone", "--quiet", "--", url, str(directory))
    await _checkout(directory, ref, url)


async def _checkout(directory: Path, ref: str, repo: str) -> None:
    if await _git("-C", str(directory), "checkout", "--quiet", ref, "--") is not None:
        raise WorkspaceError("not_found", f"workspace ref '{ref}' not found in '{repo}'")


async def _git_or_fail(*args: str) -> None:
    failure = await _git(*args)
    if failure is not None:
        raise WorkspaceError("upstream_error", f"git {args[0]} failed: {failure}")


async def _git(*args: str) -> str | None:
    """Runs git; None on success, otherwise the first lines of its stderr."""
    # Never wait on a credential prompt nobody will answer.
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    process = await asyncio.create_subprocess_exec(
        "git",
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        _, stderr = await asyncio.wait_for(process.communicate(), GIT_TIMEOUT_S)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise WorkspaceError(
            "upstream_error", f"git {args[0]} timed out after {GIT_TIMEOUT_S:.0f} s"
        ) from None
    if process.returncode == 0:
        return None
    lines = [line for line in stderr.decode(errors="replace").splitlines() if line.strip()]
    return "\n".join(lines[:5]) or f"exit status {process.returncode}"


def _empty_directory(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)


def _copy_tree(source: Path, directory: Path) -> None:
    shutil.copytree(
        source, directory, symlinks=True, ignore=shutil.ignore_patterns(".git"), dirs_exist_ok=True
    )


def _mark_ready(directory: Path) -> None:
    exclude = directory / ".git" / "info" / "exclude"
    if exclude.parent.is_dir():
        # Keeps the marker out of `git status`, so committing the run's work never picks it up.
        with exclude.open("a") as stream:
            stream.write(f"\n/{READY_MARKER}\n")
    (directory / READY_MARKER).write_text("ready\n")
