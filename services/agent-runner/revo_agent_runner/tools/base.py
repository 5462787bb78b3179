"""What a tool is: its name, its argument type, the JSON schema the model sees, its function.

A tool's function receives decoded arguments and returns text the model reads. A clear failure
is a `ToolError`: the runner hands str(exc) back to the model as a failed result and the run
goes on, so every message is written for the model to act on.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

if TYPE_CHECKING:
    from revo_core.bus import Bus

# Tool output lands in the model's context window; a few thousand tokens at most.
MAX_OUTPUT_CHARS = 16_000


class ToolError(Exception):
    """A tool's clear failure (file not found, path outside the workspace, bad regex...).
    The runner reports str(exc) to the model as a failed tool result; the run goes on."""


class ToolArgumentsError(ToolError):
    """The model's arguments do not match the tool's argument type (message names the field)."""


@dataclass(frozen=True)
class ToolContext:
    workspace: Path
    run_id: str
    tenant: str
    # Unique per call within the run and stable across a resume ("<run>-s3-c0").
    call_id: str
    # Who the run works for: the scope of what memory tools recall and remember.
    agent: str = ""
    user: str | None = None
    repository: str | None = None
    # For tools that ask another service over NATS (None: no such tool can work here).
    bus: Bus | None = None
    request_timeout_s: float = 5.0


ToolFunction = Callable[[ToolContext, Any], Awaitable[str]]


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    args_type: type[msgspec.Struct]
    # None for final_answer: the run loop handles it, there is nothing to execute.
    fn: ToolFunction | None
    side_effects: bool = False
    terminal: bool = False

    def parameters_schema(self) -> dict[str, Any]:
        """The argument type as a plain object schema: vLLM guided decoding cannot follow $ref."""
        generated = msgspec.json.schema(self.args_type)
        schema = _inline_refs(generated, generated.get("$defs", {}))
        schema.pop("title", None)
        schema.pop("description", None)
        schema.setdefault("required", [])
        schema["additionalProperties"] = False
        return schema

    def decode_args(self, arguments: str | dict[str, Any]) -> Any:
        try:
            if isinstance(arguments, str):
                # Models send "" for a tool whose arguments all have defaults.
                return msgspec.json.decode(arguments.strip() or "{}", type=self.args_type)
            return msgspec.convert(arguments, self.args_type)
        except msgspec.DecodeError as exc:  # ValidationError included
            raise ToolArgumentsError(f"invalid arguments for {self.name}: {exc}") from exc

    async def call(self, ctx: ToolContext, args: Any) -> str:
        if self.fn is None:
            raise ToolError(f"{self.name} is handled by the run loop and cannot be called")
        try:
            return cap_text(await self.fn(ctx, args))
        except OSError as exc:
            # Permission denied, disk full...: the model can work around these; don't end the run.
            raise ToolError(f"{self.name} failed: {exc.strerror or exc}") from exc


def _inline_refs(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        if "$ref" in node:
            return _inline_refs(defs[node["$ref"].rsplit("/", 1)[-1]], defs)
        return {key: _inline_refs(value, defs) for key, value in node.items() if key != "$defs"}
    if isinstance(node, list):
        return [_inline_refs(item, defs) for item in node]
    return node


def cap_text(text: str, limit: int = MAX_OUTPUT_CHARS) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\n[truncated: {len(text) - limit} more characters]"


def join_capped(lines: list[str], unit: str, more: int = 0, limit: int = MAX_OUTPUT_CHARS) -> str:
    """Whole lines up to the limit, then a marker counting what was left out (`more` included)."""
    kept: list[str] = []
    size = 0
    for line in lines:
        size += len(line) + 1
        if size > limit:
            break
        kept.append(line)
    left_out = len(lines) - len(kept) + more
    if left_out:
        kept.append(f"[truncated: {left_out} more {unit}]")
    return "\n".join(kept)
