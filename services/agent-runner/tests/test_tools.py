"""The agent tools on real files: happy paths, clear errors, and the workspace sandbox."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

import pytest

from revo_agent_runner.tools import (
    TOOLS,
    PathOutsideWorkspace,
    ToolArgumentsError,
    ToolContext,
    ToolError,
    lint,
)
from revo_agent_runner.tools.base import MAX_OUTPUT_CHARS
from revo_agent_runner.tools.paths import resolve_inside
from revo_agent_runner.workspace import READY_MARKER

SECRET = "TOP-SECRET-CONTENT"


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    return root


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory next to the workspace holding a file no tool may reveal."""
    directory = tmp_path / "outside"
    directory.mkdir()
    (directory / "secret.txt").write_text(f"{SECRET}\n")
    (directory / "leak.py").write_text(f"import {SECRET.lower().replace('-', '_')}\n")
    return directory


def write(root: Path, relative: str, content: str | bytes) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


async def call(root: Path, name: str, **arguments: object) -> str:
    spec = TOOLS[name]
    ctx = ToolContext(workspace=root, run_id="run-1", tenant="acme", call_id="run-1-s1-c0")
    return await spec.call(ctx, spec.decode_args(arguments))


# --- the registry and the schemas the model sees ---------------------------------------------


def test_the_registry_holds_every_tool_with_its_flags() -> None:
    assert set(TOOLS) == {
        "read_file",
        "list_files",
        "write_file",
        "search_code",
        "run_linter",
        "detect_languages",
        "recall",
        "remember",
        "final_answer",
        "ask_user",
    }
    assert [name for name, spec in TOOLS.items() if spec.side_effects] == ["write_file"]
    assert [name for name, spec in TOOLS.items() if spec.terminal] == ["final_answer"]
    assert TOOLS["final_answer"].fn is None and TOOLS["ask_user"].fn is None
    assert all(spec.description for spec in TOOLS.values())


@pytest.mark.parametrize("name", sorted(TOOLS))
def test_every_schema_is_a_plain_closed_object_without_refs(name: str) -> None:
    schema = TOOLS[name].parameters_schema()
    text = json.dumps(schema)
    assert "$ref" not in text and "$defs" not in text
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    assert isinstance(schema["required"], list)
    assert all(prop.get("description") for prop in schema["properties"].values())


def test_schemas_carry_required_fields_and_bounds() -> None:
    read = TOOLS["read_file"].parameters_schema()
    assert read["required"] == ["path"]
    assert read["properties"]["max_lines"]["maximum"] == 2000
    assert read["properties"]["start_line"]["minimum"] == 1
    assert TOOLS["write_file"].parameters_schema()["required"] == ["path", "content"]
    assert TOOLS["search_code"].parameters_schema()["required"] == ["pattern"]
    assert TOOLS["list_files"].parameters_schema()["required"] == []
    assert TOOLS["final_answer"].parameters_schema()["properties"]["answer"]["minLength"] == 1


# --- decoding the model's arguments ----------------------------------------------------------


def test_arguments_decode_from_json_text_and_from_a_dict() -> None:
    spec = TOOLS["read_file"]
    from_text = spec.decode_args('{"path": "a.py", "start_line": 3}')
    from_dict = spec.decode_args({"path": "a.py", "start_line": 3})
    assert (from_text.path, from_text.start_line, from_text.max_lines) == ("a.py", 3, 200)
    assert from_dict == from_text


def test_empty_arguments_mean_all_defaults() -> None:
    args = TOOLS["list_files"].decode_args("")
    assert (args.path, args.pattern, args.max_entries) == (".", None, 200)


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"path": 3}, "path"),
        ({}, "path"),
        ({"path": "a", "colour": "red"}, "colour"),
        ({"path": "a", "max_lines": 5000}, "max_lines"),
        ('{"path": "a", "start_line": 0}', "start_line"),
    ],
)
def test_bad_arguments_name_the_field(arguments: object, field: str) -> None:
    with pytest.raises(ToolArgumentsError, match=f"read_file.*{field}"):
        TOOLS["read_file"].decode_args(arguments)  # type: ignore[arg-type]


def test_malformed_json_is_an_arguments_error() -> None:
    with pytest.raises(ToolArgumentsError, match="invalid arguments for read_file"):
        TOOLS["read_file"].decode_args('{"path": ')


def test_an_empty_final_answer_is_refused() -> None:
    with pytest.raises(ToolArgumentsError, match="answer"):
        TOOLS["final_answer"].decode_args({"answer": ""})


async def test_final_answer_cannot_be_called(workspace: Path) -> None:
    with pytest.raises(ToolError, match="run loop"):
        await call(workspace, "final_answer", answer="done")


# --- read_file ------------------------------------------------------------------------------


async def test_read_file_numbers_lines_under_a_header(workspace: Path) -> None:
    write(workspace, "pkg/a.py", "import os\n\nprint(os.sep)\n")
    text = await call(workspace, "read_file", path="pkg/a.py")
    assert text == "pkg/a.py: 3 lines, showing 1-3\n1: import os\n2: \n3: print(os.sep)"


async def test_read_file_pages_through_a_long_file(workspace: Path) -> None:
    write(workspace, "long.txt", "".join(f"line {n}\n" for n in range(1, 101)))
    text = await call(workspace, "read_file", path="long.txt", start_line=40, max_lines=3)
    assert text.splitlines() == [
        "long.txt: 100 lines, showing 40-42",
        "40: line 40",
        "41: line 41",
        "42: line 42",
    ]


async def test_read_file_caps_its_output_with_a_marker(workspace: Path) -> None:
    write(workspace, "wide.txt", "".join(f"{n:04d} {'x' * 100}\n" for n in range(2000)))
    text = await call(workspace, "read_file", path="wide.txt", max_lines=2000)
    assert len(text) <= MAX_OUTPUT_CHARS + 100
    assert text.splitlines()[-1].startswith("[truncated: ")
    assert text.splitlines()[-1].endswith(" more lines]")


async def test_read_file_of_a_missing_file_says_so(workspace: Path) -> None:
    with pytest.raises(ToolError, match=r"no such file: nope\.txt"):
        await call(workspace, "read_file", path="nope.txt")


async def test_read_file_refuses_binary_files(workspace: Path) -> None:
    write(workspace, "image.png", b"\x89PNG\x00\x00\x01binary")
    with pytest.raises(ToolError, match="binary"):
        await call(workspace, "read_file", path="image.png")


async def test_read_file_refuses_directories(workspace: Path) -> None:
    (workspace / "pkg").mkdir()
    with pytest.raises(ToolError, match="directory"):
        await call(workspace, "read_file", path="pkg")


async def test_read_file_past_the_end_says_how_long_the_file_is(workspace: Path) -> None:
    write(workspace, "short.txt", "one\ntwo\n")
    with pytest.raises(ToolError, match=r"past the end.*2 lines"):
        await call(workspace, "read_file", path="short.txt", start_line=5)


# --- list_files -----------------------------------------------------------------------------


async def test_list_files_walks_the_tree_and_skips_git_and_the_marker(workspace: Path) -> None:
    write(workspace, "README.md", "hi")
    write(workspace, "pkg/a.py", "")
    write(workspace, "pkg/sub/b.py", "")
    write(workspace, ".git/HEAD", "ref: refs/heads/main")
    write(workspace, READY_MARKER, "ready")
    text = await call(workspace, "list_files")
    assert text.splitlines() == ["README.md", "pkg/", "pkg/a.py", "pkg/sub/", "pkg/sub/b.py"]


async def test_list_files_filters_by_glob_and_starts_anywhere(workspace: Path) -> None:
    write(workspace, "pkg/a.py", "")
    write(workspace, "pkg/notes.md", "")
    write(workspace, "top.py", "")
    assert (await call(workspace, "list_files", pattern="*.py")).splitlines() == [
        "pkg/a.py",
        "top.py",
    ]
    assert (await call(workspace, "list_files", path="pkg")).splitlines() == [
        "pkg/a.py",
        "pkg/notes.md",
    ]
    assert await call(workspace, "list_files", pattern="*.rs") == "no matching entries"


async def test_list_files_caps_entries_with_a_count_of_the_rest(workspace: Path) -> None:
    for n in range(30):
        write(workspace, f"f{n:02d}.txt", "")
    lines = (await call(workspace, "list_files", max_entries=10)).splitlines()
    assert lines[:2] == ["f00.txt", "f01.txt"]
    assert len(lines) == 11
    assert lines[-1] == "[truncated: 20 more entries]"


async def test_list_files_of_a_missing_directory_says_so(workspace: Path) -> None:
    with pytest.raises(ToolError, match="no such directory: gone"):
        await call(workspace, "list_files", path="gone")


# --- write_file -----------------------------------------------------------------------------


async def test_write_file_creates_parent_directories(workspace: Path) -> None:
    result = await call(workspace, "write_file", path="a/b/c.txt", content="héllo")
    assert result == "wrote 6 bytes to a/b/c.txt"
    assert (workspace / "a/b/c.txt").read_text() == "héllo"


async def test_write_file_replaces_or_appends(workspace: Path) -> None:
    write(workspace, "log.txt", "old\n")
    await call(workspace, "write_file", path="log.txt", content="first\n")
    result = await call(workspace, "write_file", path="log.txt", content="second\n", append=True)
    assert result == "appended 7 bytes to log.txt"
    assert (workspace / "log.txt").read_text() == "first\nsecond\n"


async def test_write_file_refuses_to_write_through_a_symlink(workspace: Path) -> None:
    target = write(workspace, "real.txt", "original")
    (workspace / "alias.txt").symlink_to(target)
    with pytest.raises(ToolError, match="symlink"):
        await call(workspace, "write_file", path="alias.txt", content="changed")
    assert target.read_text() == "original"


async def test_write_file_cannot_reach_outside(workspace: Path, outside: Path) -> None:
    (workspace / "escape.txt").symlink_to(outside / "secret.txt")
    for path in ("../outside/secret.txt", str(outside / "secret.txt"), "escape.txt"):
        with pytest.raises(ToolError):
            await call(workspace, "write_file", path=path, content="pwned")
    assert (outside / "secret.txt").read_text() == f"{SECRET}\n"
    assert not (workspace.parent / "pwned").exists()


# --- search_code ----------------------------------------------------------------------------


async def test_search_code_reports_file_line_and_text(workspace: Path) -> None:
    write(workspace, "pkg/a.py", "import os\n\ndef handler():\n    return os.getcwd()\n")
    write(workspace, "pkg/b.py", "# no match here\n")
    write(workspace, "c.txt", "call handler() twice\n")
    text = await call(workspace, "search_code", pattern=r"handler\(")
    assert text.splitlines() == ["c.txt:1: call handler() twice", "pkg/a.py:3: def handler():"]


async def test_search_code_skips_git_binaries_and_big_files(workspace: Path) -> None:
    write(workspace, ".git/config", "needle\n")
    write(workspace, "blob.bin", b"needle\x00\x01")
    write(workspace, "huge.txt", "needle\n" + "x" * 1_100_000)
    write(workspace, "small.txt", "a needle\n")
    assert await call(workspace, "search_code", pattern="needle") == "small.txt:1: a needle"


async def test_search_code_filters_by_glob_and_ignores_case(workspace: Path) -> None:
    write(workspace, "a.py", "TODO: fix\n")
    write(workspace, "b.md", "todo: docs\n")
    text = await call(workspace, "search_code", pattern="todo", glob="*.py", ignore_case=True)
    assert text == "a.py:1: TODO: fix"
    assert await call(workspace, "search_code", pattern="todo", glob="*.py") == (
        "no matches for /todo/"
    )


async def test_search_code_trims_lines_and_caps_results(workspace: Path) -> None:
    write(workspace, "many.txt", "".join(f"hit {n} {'y' * 300}\n" for n in range(20)))
    lines = (await call(workspace, "search_code", pattern="hit", max_results=5)).splitlines()
    assert len(lines) == 6
    assert lines[0] == f"many.txt:1: hit 0 {'y' * 194}"
    assert lines[-1] == "[truncated: 15 more matches]"


async def test_search_code_names_an_invalid_regex(workspace: Path) -> None:
    with pytest.raises(ToolError, match=r"invalid regex /foo\(/: missing \)"):
        await call(workspace, "search_code", pattern="foo(")


async def test_search_code_refuses_what_re2_cannot_run_in_linear_time(workspace: Path) -> None:
    for pattern in (r"(a)\1", r"foo(?=bar)"):
        with pytest.raises(ToolError, match="no backreferences or lookaround"):
            await call(workspace, "search_code", pattern=pattern)


async def test_a_catastrophic_pattern_answers_at_once_and_the_event_loop_keeps_ticking(
    workspace: Path,
) -> None:
    # Python's `re` backtracks 2^n ways on this line (seconds at n=25, holding the GIL).
    write(workspace, "short.txt", "a" * 25 + "b\n")
    gaps: list[float] = []

    async def tick() -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.01)
            gaps.append(time.monotonic() - last)
            last = time.monotonic()

    ticker = asyncio.create_task(tick())
    started = time.monotonic()
    try:
        text = await asyncio.wait_for(call(workspace, "search_code", pattern="(a+)+$"), 10)
    finally:
        ticker.cancel()

    assert text == "no matches for /(a+)+$/"
    assert time.monotonic() - started < 2
    assert max(gaps, default=0) < 0.5
    write(workspace, "long.txt", "a" * 1_000_000 + "b\n")  # and linear on a long line
    assert await asyncio.wait_for(call(workspace, "search_code", pattern="(a+)+$"), 10) == (
        "no matches for /(a+)+$/"
    )


# --- the sandbox ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["../outside/secret.txt", "pkg/../../outside/secret.txt", "~"])
async def test_relative_escapes_are_refused(workspace: Path, outside: Path, path: str) -> None:
    with pytest.raises(PathOutsideWorkspace, match="outside the workspace"):
        await call(workspace, "read_file", path=path)


async def test_absolute_paths_are_refused_even_inside(workspace: Path, outside: Path) -> None:
    write(workspace, "a.txt", "inside")
    for path in (str(outside / "secret.txt"), str(workspace / "a.txt"), "/etc/passwd"):
        with pytest.raises(PathOutsideWorkspace, match="outside the workspace"):
            await call(workspace, "read_file", path=path)


def test_nul_bytes_are_refused(workspace: Path) -> None:
    with pytest.raises(PathOutsideWorkspace, match="NUL"):
        resolve_inside(workspace, "a\x00b")


async def test_a_symlink_to_a_file_outside_reveals_nothing(workspace: Path, outside: Path) -> None:
    (workspace / "escape.txt").symlink_to(outside / "secret.txt")
    write(workspace, "ok.txt", "fine\n")
    with pytest.raises(PathOutsideWorkspace, match=r"'escape\.txt' is outside"):
        await call(workspace, "read_file", path="escape.txt")
    listing = await call(workspace, "list_files")
    assert listing.splitlines() == ["escape.txt", "ok.txt"]
    assert await call(workspace, "search_code", pattern=SECRET) == f"no matches for /{SECRET}/"
    assert SECRET not in await call(workspace, "search_code", pattern=".")


async def test_a_symlinked_directory_outside_is_never_entered(
    workspace: Path, outside: Path
) -> None:
    (workspace / "linked").symlink_to(outside, target_is_directory=True)
    assert await call(workspace, "list_files") == "linked"
    assert await call(workspace, "search_code", pattern=SECRET) == f"no matches for /{SECRET}/"
    for tool, arguments in [
        ("read_file", {"path": "linked/secret.txt"}),
        ("list_files", {"path": "linked"}),
        ("search_code", {"pattern": SECRET, "path": "linked"}),
        ("detect_languages", {"path": "linked"}),
        ("run_linter", {"path": "linked"}),
    ]:
        with pytest.raises(PathOutsideWorkspace):
            await call(workspace, tool, **arguments)


async def test_a_symlink_pointing_inside_is_followed(workspace: Path) -> None:
    write(workspace, "docs/real.md", "inside content\n")
    (workspace / "alias.md").symlink_to(workspace / "docs/real.md")
    (workspace / "docs-link").symlink_to(workspace / "docs", target_is_directory=True)
    text = await call(workspace, "read_file", path="alias.md")
    assert text.splitlines()[1] == "1: inside content"
    assert await call(workspace, "list_files", path="docs-link") == "docs/real.md"


# --- detect_languages -----------------------------------------------------------------------


async def test_detect_languages_counts_files_by_language(workspace: Path) -> None:
    for name in ("a.py", "pkg/b.py", "pkg/c.pyi", "web/app.ts", "web/view.tsx", "Dockerfile"):
        write(workspace, name, "")
    write(workspace, "notes.unknown", "")
    write(workspace, ".git/hooks/pre-commit.sh", "")
    report = json.loads(await call(workspace, "detect_languages"))
    assert report == {
        "languages": [
            {"name": "Python", "files": 3, "extensions": [".py", ".pyi"]},
            {"name": "TypeScript", "files": 2, "extensions": [".ts", ".tsx"]},
            {"name": "Dockerfile", "files": 1, "extensions": ["Dockerfile"]},
        ]
    }


async def test_detect_languages_of_an_empty_workspace(workspace: Path) -> None:
    assert json.loads(await call(workspace, "detect_languages")) == {"languages": []}


# --- run_linter -----------------------------------------------------------------------------

BROKEN_MODULE = """\
import os


def greet(name):
    return prefix + name
"""


async def test_run_linter_reports_findings_with_fixes(workspace: Path) -> None:
    write(workspace, "pkg/a.py", BROKEN_MODULE)
    report = json.loads(await call(workspace, "run_linter"))
    assert report["linter"] == "ruff"
    assert report["count"] == len(report["findings"]) == 2
    unused, undefined = report["findings"]
    assert unused == {
        "file": "pkg/a.py",
        "line": 1,
        "column": 8,
        "code": "F401",
        "severity": "error",
        "message": "`os` imported but unused",
        "suggested_fix": "Remove unused import: `os`",
    }
    assert (undefined["file"], undefined["line"], undefined["code"]) == ("pkg/a.py", 5, "F821")
    assert undefined["severity"] == "error"
    assert undefined["suggested_fix"] == "define or import the name before using it"


async def test_run_linter_follows_the_workspace_ruff_config(workspace: Path) -> None:
    write(workspace, "a.py", BROKEN_MODULE)
    write(workspace, "ruff.toml", '[lint]\nselect = ["F821"]\n')
    report = json.loads(await call(workspace, "run_linter", path="a.py"))
    assert [finding["code"] for finding in report["findings"]] == ["F821"]


LONG_LINE = 'x = "a line longer than the twenty characters the outside config allows"\n'
E501_CONFIG = 'line-length = 20\n[lint]\nselect = ["E501"]\n'


@pytest.mark.parametrize(
    ("config", "text"),
    [
        ("ruff.toml", 'extend = "../outside/ruff.toml"\n'),
        ("ruff.toml", 'extend = "{outside}/ruff.toml"\n'),
        ("ruff.toml", 'extend = "{outside}/secret.txt"\n'),  # ruff would quote it
        ("ruff.toml", 'extend = "/etc/passwd"\n'),
        ("ruff.toml", 'extend = "$HOME/.config/ruff/ruff.toml"\n'),
        (".ruff.toml", 'src = ["../outside"]\n'),
        ("pyproject.toml", '[tool.ruff]\nextend = "../../outside/ruff.toml"\n'),
        ("pyproject.toml", '[tool.ruff]\nextend = "inner.toml"\n'),  # whose extend escapes
    ],
)
async def test_run_linter_does_not_use_a_config_that_reaches_outside_the_workspace(
    workspace: Path, outside: Path, config: str, text: str
) -> None:
    write(outside, "ruff.toml", E501_CONFIG)
    write(workspace, "a.py", LONG_LINE + BROKEN_MODULE)
    write(workspace, "inner.toml", 'extend = "../outside/ruff.toml"\n')
    write(workspace, config, text.format(outside=outside))

    output = await call(workspace, "run_linter")

    report = json.loads(output)
    assert [f["code"] for f in report["findings"]] == ["F401", "F821"]  # ruff's defaults
    assert report["note"].startswith(f"the repository's ruff config {config} was not used")
    assert SECRET not in output


async def test_run_linter_uses_no_config_from_above_the_workspace(
    workspace: Path, tmp_path: Path
) -> None:
    write(tmp_path, "ruff.toml", E501_CONFIG)  # the runner's directories, say
    write(workspace, "a.py", LONG_LINE)
    report = json.loads(await call(workspace, "run_linter"))
    assert report["count"] == 0


async def test_run_linter_follows_an_extend_that_stays_inside(workspace: Path) -> None:
    write(workspace, "a.py", LONG_LINE + BROKEN_MODULE)
    write(workspace, "config/base.toml", E501_CONFIG)
    write(workspace, "pyproject.toml", '[tool.ruff]\nextend = "config/base.toml"\n')
    report = json.loads(await call(workspace, "run_linter"))
    assert {f["code"] for f in report["findings"]} == {"E501"}  # no F401/F821: config used
    assert "note" not in report


async def test_ruff_runs_with_an_environment_of_its_own(
    workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(workspace, "a.py", "x = 1\n")
    seen = tmp_path / "seen.txt"
    fake_ruff = write(
        tmp_path, "bin/ruff", f'#!/bin/sh\nenv > {seen}\necho "$@" >> {seen}\necho []\n'
    )
    os.chmod(fake_ruff, 0o755)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "bin" / "python"))
    monkeypatch.setenv("REVO_AGENT_RUNNER_DATABASE_URL", "postgresql://runner:hunter2@db/revo")
    monkeypatch.setenv("RUFF_OUTPUT_FORMAT", "concise")

    await call(workspace, "run_linter")

    environment = seen.read_text()
    assert "hunter2" not in environment
    assert "RUFF_" not in environment and "HOME=" not in environment
    assert "--isolated" in environment


async def test_run_linter_ignores_python_files_linked_from_outside(
    workspace: Path, outside: Path
) -> None:
    write(workspace, "ok.py", "x = 1\n")
    (workspace / "leak.py").symlink_to(outside / "leak.py")
    output = await call(workspace, "run_linter")
    assert SECRET.lower().replace("-", "_") not in output
    assert json.loads(output)["count"] == 0


async def test_run_linter_caps_findings_but_counts_them_all(workspace: Path) -> None:
    write(workspace, "many.py", "".join(f"import module_{n}\n" for n in range(300)))
    output = await call(workspace, "run_linter")
    report = json.loads(output)
    assert report["count"] == 300
    assert 0 < len(report["findings"]) <= 200
    assert report["note"] == f"showing the first {len(report['findings'])} of 300 findings"
    assert len(output) <= MAX_OUTPUT_CHARS


async def test_run_linter_without_python_files_applies_no_linter(workspace: Path) -> None:
    write(workspace, "main.go", "package main\n")
    report = json.loads(await call(workspace, "run_linter"))
    assert report == {
        "linter": None,
        "findings": [],
        "count": 0,
        "note": "no Python files: no linter applies",
    }


async def test_run_linter_without_ruff_is_a_tool_error(
    workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(workspace, "a.py", "x = 1\n")
    monkeypatch.setattr(sys, "executable", str(tmp_path / "bin" / "python"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(ToolError, match="ruff is not installed"):
        await call(workspace, "run_linter")


async def test_a_hanging_ruff_is_killed_at_the_timeout(
    workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(workspace, "a.py", "x = 1\n")
    fake_ruff = write(tmp_path, "bin/ruff", "#!/bin/sh\nexec sleep 30\n")
    os.chmod(fake_ruff, 0o755)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "bin" / "python"))
    monkeypatch.setattr(lint, "LINT_TIMEOUT_S", 0.2)
    with pytest.raises(ToolError, match="ruff timed out"):
        await call(workspace, "run_linter")


@pytest.mark.parametrize(
    ("code", "severity"),
    [
        ("F401", "error"),
        ("E999", "error"),
        ("invalid-syntax", "error"),
        ("E501", "warning"),
        ("W291", "warning"),
        ("B006", "warning"),
        ("UP006", "info"),
        ("I001", "info"),
    ],
)
def test_severity_follows_the_rule_family(code: str, severity: str) -> None:
    assert lint.severity_of(code) == severity
