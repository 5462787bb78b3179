"""The messages a model call sees: the agent's prompt, session history, the run's input and
the conversation so far, cut to fit the model's context."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from revo_agent_runner.agents import AgentSpec
from revo_agent_runner.tools import TOOLS
from revo_contracts.inference import ChatMessage, FunctionDef, Tool
from revo_contracts.runs import RunSubmit

if TYPE_CHECKING:  # model.py imports this module
    from revo_agent_runner.model import ModelReply

_SHRUNK = "\n[... shortened to fit the model's context ...]"
# A cautious guess: English prose is ~4 characters a token, JSON and code nearer 2.5-3.
CHARS_PER_TOKEN = 2.8
# Room for the chat template's own tokens around each message.
TEMPLATE_TOKENS = 64
RECALLED_HEADER = (
    "What you remember from earlier conversations and runs (it may be out of date; "
    "the user and the code come first):"
)


def budget_for(context_tokens: int, max_tokens: int) -> int:
    """Characters of conversation that should fit the model's context with room to answer."""
    return max(int((context_tokens - max_tokens - TEMPLATE_TOKENS) * CHARS_PER_TOKEN), 500)


def shrunk_budget(budget_chars: int, details: dict, max_tokens: int) -> int | None:
    """After inference said the prompt did not fit (its error details give the figures): the
    budget scaled by how far off it was, with a margin. None when the error was about
    something else, or when no cut could make room (max_tokens alone fills the context)."""
    context, prompt = details.get("max_context"), details.get("prompt_tokens")
    if not isinstance(context, int) or not isinstance(prompt, int) or prompt <= 0:
        return None
    room = context - max_tokens - TEMPLATE_TOKENS
    if room <= 0:
        return None
    return max(int(budget_chars * min(room / prompt, 0.9) * 0.95), 300)


def cut_answer(answer: str, reply: ModelReply | None, limit: int | None) -> tuple[str, bool]:
    """An answer given through a tool call, cut to `limit` tokens (and whether it was).

    The call's JSON cannot be cut while the model writes it, so the answer inside is cut
    after, at the characters per token of that same reply as inference counted them."""
    if limit is None:
        return answer, False
    keep = int(limit * _chars_per_token(reply))
    if len(answer) <= keep:
        return answer, False
    return answer[:keep], True


def _chars_per_token(reply: ModelReply | None) -> float:
    if reply is None or not reply.usage.completion_tokens:
        return CHARS_PER_TOKEN
    written = len(reply.content) or sum(len(c.function.arguments) for c in reply.tool_calls)
    return written / reply.usage.completion_tokens if written else CHARS_PER_TOKEN


def system_message(
    agent: AgentSpec, submit: RunSubmit, has_workspace: bool, recalled: str | None = None
) -> ChatMessage:
    text = agent.prompt.strip()
    if has_workspace and submit.workspace is not None:
        text += (
            f"\nThe workspace is a checkout of {submit.workspace.repo}"
            f"{' at ' + submit.workspace.ref if submit.workspace.ref else ''}; "
            "tool paths are relative to its root."
        )
    if recalled:
        # In the system message, which is never cut: its size is bounded by the recall's
        # token budget. One system message, as some chat templates accept no second one.
        text += f"\n\n{RECALLED_HEADER}\n{recalled}"
    return ChatMessage(role="system", content=text)


def latest_user_text(submit: RunSubmit) -> str:
    """The user's latest message (or the task): what the agent's recall looks for."""
    users = [m for m in input_messages(submit) if m.role == "user"]
    return users[-1].content if users else ""


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


def tool_definitions(names: list[str]) -> list[Tool]:
    return list(_tool_definitions(tuple(names)))


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

    The system prompt and the last user message (the task or question) are never cut: they
    are what the model must act on. Characters stand in for tokens (see CHARS_PER_TOKEN):
    cheap, and when the guess is off inference says so and the budget shrinks."""
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
    users = [i for i, m in enumerate(messages) if m.role == "user"]
    keep = {0, users[-1]} if users else {0}
    candidates = [
        i for i, m in enumerate(messages) if i not in keep and m.content and not m.tool_calls
    ]
    if not candidates:
        return None
    return max(candidates, key=lambda i: len(messages[i].content))
