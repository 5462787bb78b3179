"""The messages a model call sees: the agent's prompt, session history, the run's input and
the conversation so far, cut to fit the model's context."""

from __future__ import annotations

import functools

from revo_agent_runner.agents import AgentSpec
from revo_agent_runner.tools import TOOLS
from revo_contracts.inference import ChatMessage, FunctionDef, Tool
from revo_contracts.runs import RunSubmit

_SHRUNK = "\n[... shortened to fit the model's context ...]"


def system_message(agent: AgentSpec, submit: RunSubmit, has_workspace: bool) -> ChatMessage:
    text = agent.prompt.strip()
    if has_workspace and submit.workspace is not None:
        text += (
            f"\nThe workspace is a checkout of {submit.workspace.repo}"
            f"{' at ' + submit.workspace.ref if submit.workspace.ref else ''}; "
            "tool paths are relative to its root."
        )
    return ChatMessage(role="system", content=text)


def input_messages(submit: RunSubmit) -> list[ChatMessage]:
    messages = [m for m in submit.messages if m.role != "system"]
    if submit.task:
        messages.append(ChatMessage(role="user", content=submit.task))
    return messages


def history_messages(turns: list[tuple[RunSubmit, str]]) -> list[ChatMessage]:
    messages: list[ChatMessage] = []
    for submit, answer in turns:
        messages.extend(input_messages(submit))
        messages.append(ChatMessage(role="assistant", content=answer))
    return messages


def tool_definitions(agent: AgentSpec) -> list[Tool]:
    return list(_tool_definitions(tuple(agent.tools)))


@functools.cache
def _tool_definitions(names: tuple[str, ...]) -> tuple[Tool, ...]:
    """Built once per tool set: generating the schemas costs more than the rest of a step."""
    return tuple(
        Tool(
            function=FunctionDef(
                name=name,
                description=TOOLS[name].description,
                parameters=TOOLS[name].parameters_schema(),
            )
        )
        for name in names
    )


def fit(messages: list[ChatMessage], budget_chars: int) -> list[ChatMessage]:
    """Shorten the longest tool results, then the oldest history, until the whole fits.

    The system prompt and the last message are never cut: they are what the model must act
    on. Characters stand in for tokens (about 4 to 1): cheap, and close enough for a cap."""
    fitted = list(messages)
    while _size(fitted) > budget_chars:
        index = _longest_cuttable(fitted)
        if index is None:
            break
        message = fitted[index]
        keep = max(len(message.content) // 2 - len(_SHRUNK), 0)
        if keep < 64:
            del fitted[index]
            continue
        fitted[index] = ChatMessage(
            role=message.role,
            content=message.content[:keep] + _SHRUNK,
            name=message.name,
            tool_calls=message.tool_calls,
            tool_call_id=message.tool_call_id,
        )
    return fitted


def _size(messages: list[ChatMessage]) -> int:
    return sum(
        len(m.content) + sum(len(c.function.arguments) for c in m.tool_calls) for m in messages
    )


def _longest_cuttable(messages: list[ChatMessage]) -> int | None:
    candidates = [
        i for i in range(1, len(messages) - 1) if messages[i].content and not messages[i].tool_calls
    ]
    if not candidates:
        return None
    return max(candidates, key=lambda i: len(messages[i].content))
