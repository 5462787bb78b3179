"""What the keyword path and the token budget read in a text (no services needed)."""

import pydantic
import pytest

from revo_contracts.memory import MemoryScope
from revo_memory.settings import MemorySettings
from revo_memory.store import scope_lock_key
from revo_memory.text import count_tokens, identifiers


def test_code_like_tokens_are_kept_whole_and_lowercased():
    text = "Why does test_parse_header fail with E1234 in src/app.py? ParseError at foo.bar"

    assert identifiers(text) == ["test_parse_header", "e1234", "src/app.py", "parseerror",
                                 "foo.bar"]  # fmt: skip


def test_plain_words_are_left_to_full_text_search():
    assert identifiers("The deploy happens on Tuesday, after the standup.") == []


def test_tokens_are_counted_as_a_quarter_of_the_characters_rounded_up():
    assert [count_tokens(t) for t in ("a", "abcd", "abcde", "x" * 400)] == [1, 1, 2, 100]


def test_each_exact_scope_has_its_own_lock():
    keys = {
        scope_lock_key(MemoryScope(tenant="acme")),
        scope_lock_key(MemoryScope(tenant="acme", user="alice")),
        scope_lock_key(MemoryScope(tenant="acme", repository="alice")),
        scope_lock_key(MemoryScope(tenant="acme2")),
    }

    assert len(keys) == 4
    assert scope_lock_key(MemoryScope(tenant="acme")) == scope_lock_key(MemoryScope(tenant="acme"))


def test_retention_names_known_kinds_only():
    with pytest.raises(pydantic.ValidationError, match="unknown memory kinds"):
        MemorySettings(retention_s={"summry": 60})
