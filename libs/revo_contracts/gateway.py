"""Messages of the chat gateway's operator endpoints on NATS (`gateway.keys.*`)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from revo_contracts.inference import TenantId

# What each may do: docs/services/chat-gateway.md, "Roles" (the gateway's permissions.py).
Role = Literal["admin", "member", "viewer", "ci"]


class KeyCreateRequest(msgspec.Struct, kw_only=True, omit_defaults=True):
    tenant: TenantId
    role: Role = "member"
    name: Annotated[str, Meta(max_length=200)] | None = None


class KeyCreateResponse(msgspec.Struct, kw_only=True):
    key_id: str
    # The whole key, shown this once: only a hash of its secret is stored.
    key: str
    tenant: str
    role: Role
