"""Messages of the chat gateway's operator endpoints on NATS (`gateway.keys.*`)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from revo_contracts.inference import TenantId

# What each may do: docs/services/chat-gateway.md, "Roles" (the gateway's permissions.py).
Role = Literal["admin", "member", "viewer", "ci"]
# The id part of `revo_<key id>_<secret>`: what lists show and revocation names.
KeyId = Annotated[str, Meta(pattern=r"^[0-9a-f]{16}$")]
MAX_KEY_LIFETIME_S = 10 * 365 * 86_400


class KeyCreateRequest(msgspec.Struct, kw_only=True, omit_defaults=True):
    tenant: TenantId
    role: Role = "member"
    name: Annotated[str, Meta(max_length=200)] | None = None
    # The key stops working this long after its creation; None: until revoked. A
    # duration, not a time, so the operator's clock does not matter.
    expires_in_s: Annotated[int, Meta(ge=60, le=MAX_KEY_LIFETIME_S)] | None = None


class KeyCreateResponse(msgspec.Struct, kw_only=True, omit_defaults=True):
    key_id: str
    # The whole key, shown this once: only a hash of its secret is stored.
    key: str
    tenant: str
    role: Role
    expires_at: float | None = None  # unix time


class KeyListRequest(msgspec.Struct, kw_only=True, omit_defaults=True):
    # None: every tenant's keys (operators only ever reach this endpoint).
    tenant: TenantId | None = None
    include_revoked: bool = False


class KeyInfo(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A key as lists show it: never its secret. Times are unix times."""

    key_id: str
    tenant: str
    role: Role
    created_at: float
    name: str | None = None
    expires_at: float | None = None
    # When a request last came with it, to the minute (it is written at most once a minute).
    last_used_at: float | None = None
    revoked_at: float | None = None


class KeyListResponse(msgspec.Struct, kw_only=True):
    keys: list[KeyInfo]  # by tenant, then oldest first


class KeyRevokeRequest(msgspec.Struct, kw_only=True):
    key_id: KeyId


class KeyRevokeResponse(msgspec.Struct, kw_only=True):
    key_id: str
    tenant: str
    # When it was revoked: now, or the first time for a key revoked before.
    revoked_at: float


class KeyRevoked(msgspec.Struct, kw_only=True):
    """Broadcast on `gateway.keys.revoked` after a revocation, to every gateway replica."""

    key_id: KeyId
