"""Messages of the memory service: store, recall, forget, history (`memory.*`).

Every call names a scope: the tenant (required) and optionally a repository, an agent and a
user. A memory is visible to a call whose scope names the same value for every field the
memory has set: a tenant-wide memory (no repository, agent or user) is seen by every call
of that tenant, a user's memory only by calls that name that user. Storing dedupes within
the exact scope: a text whose embedding is close enough to an existing memory's becomes a
new version of that memory (`memory.history` lists every version).

Times on the wire are unix seconds (float). Filters reject unknown fields, so a misspelt
filter is an `invalid_request` rather than a filter silently ignored.
"""

from __future__ import annotations

from typing import Annotated, Literal, get_args

import msgspec
from msgspec import Meta

from revo_contracts.inference import TenantId

MemoryKind = Literal["fact", "preference", "fix", "failure_signature", "summary"]
MEMORY_KINDS: tuple[str, ...] = get_args(MemoryKind)
# A repository ("github.com/acme/api", "acme/api"), an agent name, a user id.
SCOPE_VALUE_PATTERN = r"^[A-Za-z0-9_.:/@+-]{1,256}$"
ScopeValue = Annotated[str, Meta(pattern=SCOPE_VALUE_PATTERN)]
Tag = Annotated[str, Meta(pattern=r"^[A-Za-z0-9_.:/@+-]{1,64}$")]
MemoryId = Annotated[str, Meta(pattern=r"^[0-9a-f-]{32,36}$")]
RunRef = Annotated[str, Meta(pattern=r"^[A-Za-z0-9_.:-]{1,128}$")]
# The service has its own (smaller, configurable) limit; this one bounds what is decoded.
MemoryText = Annotated[str, Meta(max_length=100_000)]


class MemoryScope(msgspec.Struct, kw_only=True, omit_defaults=True, forbid_unknown_fields=True):
    tenant: TenantId
    repository: ScopeValue | None = None
    agent: ScopeValue | None = None
    user: ScopeValue | None = None


class MemoryFilter(msgspec.Struct, kw_only=True, omit_defaults=True, forbid_unknown_fields=True):
    """Narrows recall and forget. Empty lists mean "any"."""

    kinds: list[MemoryKind] = []
    # The memory carries every one of these tags.
    tags: list[Tag] = []
    # Last written (created or updated) at or after / before these unix times.
    since: float | None = None
    until: float | None = None
    source_run: RunRef | None = None


# -- store ----------------------------------------------------------------------------------


class MemoryInput(msgspec.Struct, kw_only=True, omit_defaults=True, forbid_unknown_fields=True):
    text: MemoryText
    kind: MemoryKind = "fact"
    tags: Annotated[list[Tag], Meta(max_length=32)] = []
    # The run that learnt it.
    source_run: RunRef | None = None


class MemoryStoreRequest(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Store one or more memories in one scope (one embedding call for the batch)."""

    scope: MemoryScope
    memories: Annotated[list[MemoryInput], Meta(min_length=1, max_length=256)]
    request_id: RunRef | None = None


class StoredMemory(msgspec.Struct, kw_only=True, omit_defaults=True):
    id: str
    version: int
    # created: a new memory; updated: it said the same as memory `id` (similarity above the
    # service's threshold) and became its new version; unchanged: the same text again.
    action: Literal["created", "updated", "unchanged"]
    # Similarity to the memory it was merged into (updated, unchanged).
    similarity: float | None = None


class MemoryStoreResponse(msgspec.Struct, kw_only=True):
    stored: list[StoredMemory]  # in the order of the request's memories
    embed_model: str


# -- recall ---------------------------------------------------------------------------------


class MemoryRecallRequest(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Memories relevant to `query`, best first, cut to `token_budget` tokens of text.

    `top_k` above the service's maximum (100 by default) is an invalid_request."""

    scope: MemoryScope
    query: MemoryText
    filter: MemoryFilter | None = None
    top_k: Annotated[int, Meta(ge=1)] = 10
    # Score is in [0, 1]: see Memory.score.
    min_score: Annotated[float, Meta(ge=0.0, le=1.0)] = 0.0
    # Tokens of memory text the caller has room for; None: no cut.
    token_budget: Annotated[int, Meta(ge=1)] | None = None
    request_id: RunRef | None = None


class Memory(msgspec.Struct, kw_only=True, omit_defaults=True):
    id: str
    text: str
    kind: MemoryKind
    scope: MemoryScope
    version: int
    created_at: float
    updated_at: float
    tags: list[str] = []
    source_run: str | None = None
    expires_at: float | None = None
    # Recall only: score = (1 - w) * similarity + w * keyword, w the service's keyword
    # weight (0.3 by default); similarity is the cosine similarity of the embeddings
    # (clipped at 0), keyword the full-text rank mapped into [0, 1) (rank / (rank + 1)).
    score: float | None = None
    similarity: float | None = None
    keyword: float | None = None
    # Tokens of `text` as counted against the budget.
    tokens: int | None = None


class MemoryRecallResponse(msgspec.Struct, kw_only=True):
    memories: list[Memory]
    # Tokens of the returned texts; true when a memory that passed min_score was left out
    # because it did not fit the budget.
    tokens: int = 0
    truncated: bool = False
    embed_model: str = ""


# -- forget / history -----------------------------------------------------------------------


class MemoryForgetRequest(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Delete memories (and their history) of the scope's tenant: the listed `ids`, or every
    memory that matches `filter`. One of the two is required. Here the scope narrows like a
    filter: a repository, agent or user it names must be the memory's own, and one it omits
    matches any, so `{tenant}` with an empty filter (`{}`) forgets all of the tenant's."""

    scope: MemoryScope
    ids: Annotated[list[MemoryId], Meta(max_length=1000)] = []
    filter: MemoryFilter | None = None


class MemoryForgetResponse(msgspec.Struct, kw_only=True):
    forgotten: int
    ids: list[str] = []


class MemoryHistoryRequest(msgspec.Struct, kw_only=True):
    scope: MemoryScope
    id: MemoryId


class MemoryVersion(msgspec.Struct, kw_only=True, omit_defaults=True):
    version: int
    text: str
    kind: MemoryKind
    action: Literal["created", "updated"]
    recorded_at: float
    tags: list[str] = []
    source_run: str | None = None
    # updated: the similarity of this text to the version before it.
    similarity: float | None = None


class MemoryHistoryResponse(msgspec.Struct, kw_only=True):
    id: str
    versions: list[MemoryVersion]  # oldest first; the last is the current text
