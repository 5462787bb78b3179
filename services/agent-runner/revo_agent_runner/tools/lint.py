"""run_linter and detect_languages: what the workspace is written in, and what a linter finds.

Python is linted with ruff (installed with the agent-runner); its findings come back as JSON
the model can act on, each with a suggested fix. Other languages have no linter yet. ruff
sees only the workspace's own config, vetted (ruff_config.py), and an environment of its
own: nothing of the runner's (its database URL, its NATS credentials) reaches it.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Annotated

import msgspec
from msgspec import Meta

from revo_agent_runner.tools.base import MAX_OUTPUT_CHARS, ToolContext, ToolError, ToolSpec
from revo_agent_runner.tools.paths import resolve_inside, walk_files
from revo_agent_runner.tools.ruff_config import RuffConfig, workspace_config

LINT_TIMEOUT_S = 60.0
MAX_FINDINGS = 200
PYTHON_SUFFIXES = frozenset({".py", ".pyi"})
RUFF_RULES_URL = "https://docs.astral.sh/ruff/rules/"

LANGUAGE_BY_EXTENSION = {
    **dict.fromkeys([".py", ".pyi"], "Python"),
    **dict.fromkeys([".js", ".mjs", ".cjs", ".jsx"], "JavaScript"),
    **dict.fromkeys([".ts", ".tsx", ".mts", ".cts"], "TypeScript"),
    ".go": "Go",
    ".rs": "Rust",
    ".java": "Java",
    **dict.fromkeys([".c", ".h"], "C"),
    **dict.fromkeys([".cc", ".cpp", ".cxx", ".hh", ".hpp", ".hxx"], "C++"),
    ".cs": "C#",
    ".rb": "Ruby",
    ".php": "PHP",
    **dict.fromkeys([".sh", ".bash", ".zsh"], "Shell"),
    **dict.fromkeys([".kt", ".kts"], "Kotlin"),
    ".swift": "Swift",
    **dict.fromkeys([".yaml", ".yml"], "YAML"),
    ".json": "JSON",
    **dict.fromkeys([".md", ".markdown"], "Markdown"),
    **dict.fromkeys([".html", ".htm"], "HTML"),
    ".css": "CSS",
    ".sql": "SQL",
    ".toml": "TOML",
}

# Used when ruff offers no automatic fix: the commonest rules, in words a model acts on.
FIX_HINTS = {
    "invalid-syntax": "fix the syntax error at this position",
    "F401": "remove the unused import",
    "F811": "remove or rename the redefinition",
    "F821": "define or import the name before using it",
    "F841": "remove the unused variable or use it",
    "E402": "move the import to the top of the module",
    "E501": "split the line so it fits the line length limit",
    "E711": "compare to None with `is` / `is not`",
    "E712": "use the value's truth directly instead of comparing to True/False",
    "E722": "catch a specific exception instead of a bare `except:`",
    "B006": "default to None and create the mutable value inside the function",
}


class DetectLanguagesArgs(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    path: Annotated[
        str, Meta(description="Directory to inspect, relative to the workspace root.")
    ] = "."


class RunLinterArgs(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    path: Annotated[
        str, Meta(description="File or directory to lint, relative to the workspace root.")
    ] = "."


class LanguageCount(msgspec.Struct):
    name: str
    files: int
    extensions: list[str]


class LanguagesReport(msgspec.Struct):
    languages: list[LanguageCount]


class Finding(msgspec.Struct):
    file: str
    line: int
    column: int
    code: str
    severity: str
    message: str
    suggested_fix: str


class LintReport(msgspec.Struct, omit_defaults=True):
    linter: str | None
    findings: list[Finding]
    count: int
    note: str | None = None


class RuffLocation(msgspec.Struct):
    row: int
    column: int


class RuffFix(msgspec.Struct):
    message: str | None = None


class RuffDiagnostic(msgspec.Struct, kw_only=True):
    """One entry of `ruff check --output-format json`; fields we don't use are ignored."""

    filename: str
    location: RuffLocation
    message: str
    code: str | None = None
    fix: RuffFix | None = None


async def detect_languages(ctx: ToolContext, args: DetectLanguagesArgs) -> str:
    return await asyncio.to_thread(_detect_languages, ctx.workspace, args)


def _detect_languages(root: Path, args: DetectLanguagesArgs) -> str:
    files: Counter[str] = Counter()
    extensions: defaultdict[str, set[str]] = defaultdict(set)
    for path in walk_files(resolve_inside(root, args.path)):
        if (found := language_of(path)) is not None:
            language, extension = found
            files[language] += 1
            extensions[language].add(extension)
    languages = [
        LanguageCount(name, count, sorted(extensions[name]))
        for name, count in sorted(files.items(), key=lambda item: (-item[1], item[0]))
    ]
    return msgspec.json.encode(LanguagesReport(languages)).decode()


def language_of(path: Path) -> tuple[str, str] | None:
    """The file's language and the extension (or file name) that tells it, if known."""
    if path.name == "Dockerfile" or path.name.startswith("Dockerfile."):
        return "Dockerfile", "Dockerfile"
    extension = path.suffix.lower()
    if extension == ".dockerfile":
        return "Dockerfile", extension
    language = LANGUAGE_BY_EXTENSION.get(extension)
    return (language, extension) if language else None


async def run_linter(ctx: ToolContext, args: RunLinterArgs) -> str:
    target = resolve_inside(ctx.workspace, args.path)
    if not target.exists():
        raise ToolError(f"no such file or directory: {args.path}")
    if not await asyncio.to_thread(_has_python_files, target):
        report = LintReport(None, [], 0, note="no Python files: no linter applies")
        return msgspec.json.encode(report).decode()
    config = await asyncio.to_thread(workspace_config, ctx.workspace, target)
    output = await _run_ruff(find_ruff(), target, ctx.workspace, config)
    findings = _findings(ctx.workspace, _decode_ruff(output))
    return _encode_fitting(findings, config.note)


def _has_python_files(target: Path) -> bool:
    return any(path.suffix in PYTHON_SUFFIXES for path in walk_files(target))


def find_ruff() -> Path:
    # The ruff installed next to this interpreter first: the version the agent-runner pins.
    beside_python = Path(sys.executable).parent / "ruff"
    if beside_python.is_file():
        return beside_python
    on_path = shutil.which("ruff")
    if on_path is None:
        raise ToolError("ruff is not installed on this runner: no Python linter is available")
    return Path(on_path)


def ruff_environment() -> dict[str, str]:
    """All ruff gets of the environment: no HOME or XDG_CONFIG_HOME (no user config), no
    RUFF_* settings, none of the runner's secrets."""
    return {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}


def ruff_command(ruff: Path, config: RuffConfig) -> list[str]:
    command = [str(ruff), "check", "--output-format", "json", "--no-cache", "--exit-zero"]
    # --config alone also stops ruff's search for configs (above the workspace, too).
    return [*command, *(["--config", str(config.path)] if config.path else ["--isolated"])]


async def _run_ruff(ruff: Path, target: Path, root: Path, config: RuffConfig) -> bytes:
    process = await asyncio.create_subprocess_exec(
        *ruff_command(ruff, config),
        str(target),
        # A config's relative paths are read from the directory ruff runs in: its own.
        cwd=config.path.parent if config.path else root,
        env=ruff_environment(),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), LINT_TIMEOUT_S)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise ToolError(f"ruff timed out after {LINT_TIMEOUT_S:.0f} s") from None
    if process.returncode != 0:
        # With --exit-zero only a broken run (a bad config, say) exits non-zero.
        first_lines = "\n".join(stderr.decode(errors="replace").strip().splitlines()[:5])
        raise ToolError(f"ruff failed: {first_lines}")
    return stdout


def _decode_ruff(output: bytes) -> list[RuffDiagnostic]:
    try:
        return msgspec.json.decode(output, type=list[RuffDiagnostic])
    except msgspec.DecodeError as exc:
        raise ToolError(f"ruff's output could not be read: {exc}") from exc


def _findings(root: Path, diagnostics: list[RuffDiagnostic]) -> list[Finding]:
    real_root = root.resolve()
    findings = []
    for diagnostic in diagnostics:
        # ruff follows a symlinked file; a finding about a file outside would leak its content.
        real_file = Path(diagnostic.filename).resolve()
        if real_file.is_relative_to(real_root):
            findings.append(_finding(real_file.relative_to(real_root).as_posix(), diagnostic))
    return findings


def _finding(file: str, diagnostic: RuffDiagnostic) -> Finding:
    code = diagnostic.code or "invalid-syntax"
    return Finding(
        file=file,
        line=diagnostic.location.row,
        column=diagnostic.location.column,
        code=code,
        severity=severity_of(code),
        message=diagnostic.message,
        suggested_fix=_suggested_fix(code, diagnostic.fix),
    )


def severity_of(code: str) -> str:
    # Pyflakes (F) and E9 findings are real bugs; ruff's own codes (invalid-syntax) too.
    if code.startswith(("F", "E9")) or not code[:1].isupper():
        return "error"
    if code.startswith(("E", "W", "B")):
        return "warning"
    return "info"


def _suggested_fix(code: str, fix: RuffFix | None) -> str:
    if fix is not None and fix.message:
        return fix.message
    return FIX_HINTS.get(code, f"see {RUFF_RULES_URL} for {code}")


def _encode_fitting(findings: list[Finding], config_note: str | None = None) -> str:
    """The report with as many findings as fit the output limit; count stays the total."""
    shown = findings[:MAX_FINDINGS]
    while True:
        notes = [config_note] if config_note else []
        if len(shown) < len(findings):
            notes.append(f"showing the first {len(shown)} of {len(findings)} findings")
        report = LintReport("ruff", shown, len(findings), note="; ".join(notes) or None)
        text = msgspec.json.encode(report).decode()
        if len(text) <= MAX_OUTPUT_CHARS:
            return text
        shown = shown[: len(shown) * 3 // 4]


DETECT_LANGUAGES = ToolSpec(
    name="detect_languages",
    description=(
        "Count the workspace's files per programming language (by extension); "
        "returns JSON sorted by file count."
    ),
    args_type=DetectLanguagesArgs,
    fn=detect_languages,
)

RUN_LINTER = ToolSpec(
    name="run_linter",
    description=(
        "Lint the workspace's Python code with ruff; returns JSON findings with file, line, "
        "code, severity, message and a suggested fix."
    ),
    args_type=RunLinterArgs,
    fn=run_linter,
)
