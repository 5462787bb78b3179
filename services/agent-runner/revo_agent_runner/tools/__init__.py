"""The tools an agent calls, by name: the run loop looks them up in `TOOLS`."""

from __future__ import annotations

from revo_agent_runner.tools.answer import FINAL_ANSWER
from revo_agent_runner.tools.ask import ASK_USER
from revo_agent_runner.tools.base import ToolArgumentsError, ToolContext, ToolError, ToolSpec
from revo_agent_runner.tools.files import LIST_FILES, READ_FILE, WRITE_FILE
from revo_agent_runner.tools.lint import DETECT_LANGUAGES, RUN_LINTER
from revo_agent_runner.tools.memory import RECALL, REMEMBER
from revo_agent_runner.tools.paths import PathOutsideWorkspace
from revo_agent_runner.tools.search import SEARCH_CODE

TOOLS: dict[str, ToolSpec] = {
    spec.name: spec
    for spec in (
        READ_FILE,
        LIST_FILES,
        WRITE_FILE,
        SEARCH_CODE,
        RUN_LINTER,
        DETECT_LANGUAGES,
        RECALL,
        REMEMBER,
        FINAL_ANSWER,
        ASK_USER,
    )
}

__all__ = [
    "TOOLS",
    "PathOutsideWorkspace",
    "ToolArgumentsError",
    "ToolContext",
    "ToolError",
    "ToolSpec",
]
