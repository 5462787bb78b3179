"""final_answer: how the model ends a run. Only its schema lives here; the run loop acts on it."""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

from revo_agent_runner.tools.base import ToolSpec


class FinalAnswerArgs(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    answer: Annotated[
        str, Meta(min_length=1, description="The complete answer to the user, in Markdown.")
    ]


FINAL_ANSWER = ToolSpec(
    name="final_answer",
    description=(
        "Call this once you are done, with your complete answer to the user. "
        "The run ends with it: nothing else you write is shown."
    ),
    args_type=FinalAnswerArgs,
    fn=None,
    terminal=True,
)
