"""Agent definitions: a prompt, a tool set and limits, loaded from a YAML file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
import yaml
from msgspec import Meta

from revo_agent_runner.tools import TOOLS
from revo_contracts.memory import MemoryKind


class AgentConfigError(Exception):
    """The agents file is missing, malformed, or names a tool the runner does not have."""


class OpeningCall(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A tool call the agent always makes first, before the model's first step."""

    tool: str
    arguments: dict[str, Any] = {}


class RecallSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Memories the agent is given before its first step, recalled with the user's latest
    message: at most `top_k`, each scoring at least `min_score`, `token_budget` tokens of
    text in all (so they never crowd the conversation out of the prompt)."""

    top_k: Annotated[int, Meta(ge=1, le=20)] = 5
    token_budget: Annotated[int, Meta(ge=1, le=4000)] = 400
    min_score: Annotated[float, Meta(ge=0.0, le=1.0)] = 0.3
    kinds: list[MemoryKind] = []


class AgentSpec(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: str = ""
    description: str = ""
    prompt: str
    tools: list[str] = []
    opening: list[OpeningCall] = []
    # Set: relevant memories go into the system prompt before the first step, tools or not.
    recall: RecallSettings | None = None
    # True: without a workspace the agent chats in plain text instead of calling tools.
    tools_need_workspace: bool = False
    # "lint_findings": the final answer carries the linter's findings, from the tool
    # results themselves, so they are exact whatever the model writes around them.
    report: Literal["lint_findings"] | None = None
    model: str = "auto"
    temperature: float = 0.2
    max_tokens_per_step: int = 512
    # A cap on the run's max_steps for this agent.
    max_steps: int | None = None
    # After this many model steps only final_answer is offered: a small model that keeps
    # exploring is brought to answer instead of running into the step limit.
    answer_after: int | None = None

    def uses_tools(self, has_workspace: bool) -> bool:
        return bool(self.tools) and (has_workspace or not self.tools_need_workspace)


class AgentsFile(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    agents: dict[str, AgentSpec]


def load_agents(path: Path) -> dict[str, AgentSpec]:
    try:
        raw = yaml.safe_load(path.read_text())
        config = msgspec.convert(raw, AgentsFile)
    except (OSError, yaml.YAMLError, msgspec.ValidationError) as exc:
        raise AgentConfigError(f"agents file {path}: {exc}") from None
    for name, spec in config.agents.items():
        spec.name = name
        _check_tools(spec)
    return config.agents


def _check_tools(spec: AgentSpec) -> None:
    named = spec.tools + [call.tool for call in spec.opening]
    unknown = sorted(set(named) - TOOLS.keys())
    if unknown:
        raise AgentConfigError(
            f"agent {spec.name!r} names unknown tools {unknown}; known: {sorted(TOOLS)}"
        )
    if spec.tools and "final_answer" not in spec.tools:
        raise AgentConfigError(f"agent {spec.name!r} has tools but no final_answer to end with")
