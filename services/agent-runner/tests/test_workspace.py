"""Per-run workspaces prepared from real git repositories, plain directories and file:// URLs."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from revo_agent_runner.workspace import (
    READY_MARKER,
    WorkspaceError,
    is_url,
    prepare_workspace,
    remove_workspace,
)
from revo_contracts.runs import Workspace

GIT_IDENTITY = ["-c", "user.name=Revo Test", "-c", "user.email=test@revo.invalid"]


def git(repo: Path, *args: str) -> str:
    completed = subprocess.run(
        ["git", *GIT_IDENTITY, "-C", str(repo), *args],
        check=True,
        capture_output=True,
        text=True,
    )
    return completed.stdout.strip()


def commit_file(repo: Path, name: str, content: str) -> str:
    (repo / name).write_text(content)
    git(repo, "add", name)
    git(repo, "commit", "--quiet", "-m", f"write {name}")
    return git(repo, "rev-parse", "HEAD")


class Repo:
    """A repository with history: v1 (a commit and a tag), main at v2, a feature branch."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir()
        git(path, "init", "--quiet", "--initial-branch=main")
        self.first = commit_file(path, "app.txt", "v1\n")
        git(path, "tag", "v1")
        git(path, "checkout", "--quiet", "-b", "feature")
        commit_file(path, "feature.txt", "feature work\n")
        git(path, "checkout", "--quiet", "main")
        commit_file(path, "app.txt", "v2\n")

    @property
    def url(self) -> str:
        return self.path.as_uri()


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    return Repo(tmp_path / "repo")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "workspaces"


def workspace_files(directory: Path) -> list[str]:
    return sorted(
        path.relative_to(directory).as_posix()
        for path in directory.rglob("*")
        if ".git" not in path.parts and not path.is_dir()
    )


async def test_no_spec_gives_an_empty_directory_kept_across_a_resume(root: Path) -> None:
    directory = await prepare_workspace(root, "run-1", None)
    assert directory == root / "run-1"
    assert workspace_files(directory) == []
    (directory / "notes.txt").write_text("written before the runner died")

    again = await prepare_workspace(root, "run-1", None)

    assert workspace_files(again) == ["notes.txt"]
    remove_workspace(root, "run-1")
    assert not directory.exists()


async def test_a_local_repository_is_cloned_at_its_head(root: Path, repo: Repo) -> None:
    directory = await prepare_workspace(root, "run-1", Workspace(repo=str(repo.path)))
    assert (directory / "app.txt").read_text() == "v2\n"
    assert not (directory / "feature.txt").exists()
    # The marker is kept out of git, so the run's changes can be committed as they are.
    assert git(directory, "status", "--porcelain") == ""


@pytest.mark.parametrize(
    ("ref", "app", "has_feature"),
    [("v1", "v1\n", False), ("feature", "v1\n", True), ("first-commit", "v1\n", False)],
)
async def test_a_local_repository_is_checked_out_at_the_ref(
    root: Path, repo: Repo, ref: str, app: str, has_feature: bool
) -> None:
    ref = repo.first if ref == "first-commit" else ref
    directory = await prepare_workspace(root, "run-1", Workspace(repo=str(repo.path), ref=ref))
    assert (directory / "app.txt").read_text() == app
    assert (directory / "feature.txt").exists() is has_feature


async def test_an_unknown_ref_is_not_found_and_leaves_nothing(root: Path, repo: Repo) -> None:
    with pytest.raises(WorkspaceError, match="'no-such-branch' not found") as caught:
        await prepare_workspace(root, "run-1", Workspace(repo=str(repo.path), ref="no-such-branch"))
    assert caught.value.code == "not_found"
    assert not (root / "run-1").exists()


async def test_a_missing_repository_is_not_found(root: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(WorkspaceError, match=f"'{missing}' does not exist") as caught:
        await prepare_workspace(root, "run-1", Workspace(repo=str(missing)))
    assert caught.value.code == "not_found"


async def test_a_plain_directory_is_copied_with_its_symlinks(root: Path, tmp_path: Path) -> None:
    source = tmp_path / "plain"
    (source / "src").mkdir(parents=True)
    (source / "src" / "main.py").write_text("print('hi')\n")
    (source / "vendor" / ".git").mkdir(parents=True)
    (source / "vendor" / ".git" / "HEAD").write_text("ref\n")
    (source / "link.py").symlink_to("src/main.py")
    directory = await prepare_workspace(root, "run-1", Workspace(repo=str(source)))
    assert workspace_files(directory) == [READY_MARKER, "link.py", "src/main.py"]
    assert not (directory / "vendor" / ".git").exists()
    assert (directory / "link.py").is_symlink()
    assert (directory / "link.py").read_text() == "print('hi')\n"


async def test_a_ref_on_a_plain_directory_is_an_invalid_request(root: Path, tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    spec = Workspace(repo=str(tmp_path / "plain"), ref="main")
    with pytest.raises(WorkspaceError, match="not a git repository") as caught:
        await prepare_workspace(root, "run-1", spec)
    assert caught.value.code == "invalid_request"


async def test_a_file_url_is_cloned_at_its_default_branch(root: Path, repo: Repo) -> None:
    directory = await prepare_workspace(root, "run-1", Workspace(repo=repo.url))
    assert (directory / "app.txt").read_text() == "v2\n"


@pytest.mark.parametrize("ref", ["feature", "v1"])
async def test_a_file_url_is_cloned_at_a_branch_or_tag(root: Path, repo: Repo, ref: str) -> None:
    directory = await prepare_workspace(root, "run-1", Workspace(repo=repo.url, ref=ref))
    assert (directory / "app.txt").read_text() == "v1\n"
    assert (directory / "feature.txt").exists() is (ref == "feature")


async def test_a_file_url_is_cloned_at_a_commit_sha(root: Path, repo: Repo) -> None:
    directory = await prepare_workspace(root, "run-1", Workspace(repo=repo.url, ref=repo.first))
    assert (directory / "app.txt").read_text() == "v1\n"
    assert git(directory, "rev-parse", "HEAD") == repo.first


async def test_an_unknown_ref_at_a_url_is_not_found(root: Path, repo: Repo) -> None:
    with pytest.raises(WorkspaceError, match="'nope' not found") as caught:
        await prepare_workspace(root, "run-1", Workspace(repo=repo.url, ref="nope"))
    assert caught.value.code == "not_found"


async def test_an_unreachable_url_is_an_upstream_error(root: Path, tmp_path: Path) -> None:
    url = (tmp_path / "no-repo-here").as_uri()
    with pytest.raises(WorkspaceError, match=r"git clone failed: .+") as caught:
        await prepare_workspace(root, "run-1", Workspace(repo=url))
    assert caught.value.code == "upstream_error"
    assert not (root / "run-1").exists()


async def test_a_ready_workspace_is_reused_as_it_is(root: Path, repo: Repo) -> None:
    directory = await prepare_workspace(root, "run-1", Workspace(repo=str(repo.path)))
    (directory / "app.txt").write_text("edited by the run\n")
    again = await prepare_workspace(root, "run-1", Workspace(repo=str(repo.path), ref="v1"))
    assert again == directory
    assert (again / "app.txt").read_text() == "edited by the run\n"


async def test_a_partial_workspace_is_prepared_again(root: Path, repo: Repo) -> None:
    partial = root / "run-1"
    partial.mkdir(parents=True)
    (partial / "half-copied.txt").write_text("left by a crash\n")
    directory = await prepare_workspace(root, "run-1", Workspace(repo=str(repo.path)))
    assert workspace_files(directory) == [READY_MARKER, "app.txt"]


async def test_remove_workspace_deletes_it_and_ignores_a_missing_one(root: Path) -> None:
    await prepare_workspace(root, "run-1", None)
    remove_workspace(root, "run-1")
    assert not (root / "run-1").exists()
    remove_workspace(root, "run-1")


@pytest.mark.parametrize("run_id", ["../escape", "a/b", ""])
async def test_a_run_id_that_is_not_a_plain_name_is_refused(root: Path, run_id: str) -> None:
    with pytest.raises(WorkspaceError) as caught:
        await prepare_workspace(root, run_id, None)
    assert caught.value.code == "invalid_request"
    with pytest.raises(WorkspaceError):
        remove_workspace(root, run_id)


async def test_a_ref_that_looks_like_an_option_is_refused(root: Path, repo: Repo) -> None:
    spec = Workspace(repo=str(repo.path), ref="--upload-pack=touch pwned")
    with pytest.raises(WorkspaceError, match="not a valid git ref") as caught:
        await prepare_workspace(root, "run-1", spec)
    assert caught.value.code == "invalid_request"


@pytest.mark.parametrize(
    ("repo", "expected"),
    [
        ("https://github.com/org/repo.git", True),
        ("file:///srv/repo", True),
        ("git@github.com:org/repo.git", True),
        ("/srv/repos/app", False),
        ("relative/dir", False),
    ],
)
def test_urls_are_told_from_local_paths(repo: str, expected: bool) -> None:
    assert is_url(repo) is expected
