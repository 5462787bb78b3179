"""Structured results that come from tool output, not from the model's words.

The code-analyst's findings are the linter's own (file:line, severity, fix), so they are
exact even when a small model's summary around them is vague.
"""

from __future__ import annotations

import json
from typing import Any

from revo_agent_runner.replay import RunState

_SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}


def lint_report(state: RunState) -> dict[str, Any]:
    data: dict[str, Any] = {"languages": [], "findings": [], "count": 0, "linter": None}
    for call_id, result in state.results.items():
        if not result.ok:
            continue
        tool = state.calls[call_id].tool if call_id in state.calls else ""
        parsed = _json(result.output)
        if tool == "detect_languages" and parsed:
            data["languages"] = parsed.get("languages", [])
        elif tool == "run_linter" and parsed:
            data["linter"] = parsed.get("linter")
            data["findings"] = parsed.get("findings", [])
            data["count"] = parsed.get("count", len(data["findings"]))
            if parsed.get("note"):
                data["note"] = parsed["note"]
    return data


def render_lint_report(summary: str, data: dict[str, Any]) -> str:
    languages = ", ".join(f"{lang['name']} ({lang['files']})" for lang in data["languages"])
    lines = [summary.strip(), "", f"Languages: {languages or 'none found'}"]
    if data["linter"] is None:
        lines.append(f"Linter: {data.get('note') or 'none applies'}")
        return "\n".join(lines)
    lines.append(f"Findings from {data['linter']}: {data['count']}")
    findings = sorted(
        data["findings"],
        key=lambda f: (_SEVERITY_ORDER.get(f.get("severity"), 3), f.get("file"), f.get("line")),
    )
    for finding in findings:
        lines.append(
            f"- {finding['file']}:{finding['line']} [{finding['severity']}] {finding['code']} "
            f"{finding['message']} -> fix: {finding['suggested_fix']}"
        )
    return "\n".join(lines)


def _json(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
