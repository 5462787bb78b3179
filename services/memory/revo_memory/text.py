"""What the memory service reads in a text besides its embedding: identifiers and tokens.

Identifiers. Postgres's parsers split `test_parse_header` into `test`, `parse`, `header`, so
a search for one test name matches every test_parse_*. Tokens that look like code — with an
underscore, a digit next to letters, an inner capital, or a dot, colon or slash between
word characters (`E1234`, `ParseError`, `foo.bar`, `src/app.py`) — are therefore also kept
whole, lowercased, as lexemes of weight A in the memory's tsvector, and looked up whole in
the query.

Tokens. Budgets are counted as ceil(characters / 4), the usual estimate for English text
with BPE tokenizers (all-MiniLM's and GPT-style ones): no tokenizer on the hot path, and
the same count on every replica and in every caller that wants to check it.
"""

from __future__ import annotations

import math
import re

_WORD = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:/-]*[A-Za-z0-9_]|[A-Za-z0-9_]")
_CODE_LIKE = re.compile(r"_|[A-Za-z][0-9]|[0-9][A-Za-z]|[a-z][A-Z]|[A-Za-z0-9][.:/][A-Za-z0-9]")
MAX_IDENTIFIERS = 64
MAX_IDENTIFIER_CHARS = 200


def identifiers(text: str) -> list[str]:
    """The code-like tokens of `text`, lowercased, each once, in order of appearance."""
    found: dict[str, None] = {}
    for match in _WORD.finditer(text):
        word = match.group(0)
        if len(word) > MAX_IDENTIFIER_CHARS or not _CODE_LIKE.search(word):
            continue
        found.setdefault(word.lower(), None)
        if len(found) >= MAX_IDENTIFIERS:
            break
    return list(found)


def count_tokens(text: str) -> int:
    return max(1, math.ceil(len(text) / 4))
