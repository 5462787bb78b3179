"""ask_user: the agent asks the person who started the run, and waits for the answer.

Only its schema lives here: the run loop records the question (`waiting_for_input`), waits
for an answer on `runs.control.<run>`, and hands it back as the tool's result.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

from revo_agent_runner.tools.base import ToolSpec


class AskUserArgs(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    question: Annotated[
        str,
        Meta(min_length=1, max_length=2000, description="The question, in one or two sentences."),
    ]


ASK_USER = ToolSpec(
    name="ask_user",
    description="Ask the user a question when you cannot go on without their answer.",
    args_type=AskUserArgs,
    fn=None,
)
