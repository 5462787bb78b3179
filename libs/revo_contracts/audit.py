"""The audit log (DESIGN.md §2 `audit.<tenant>`, stream AUDIT): who did what, append-only.

Each service publishes what it did on someone's behalf; the chat gateway keeps the stream in
its `gateway.audit` table and serves it (`gateway.audit.list` to operators, `GET /v1/audit`
to a tenant's admins). An event never carries a secret: a key's id, never the key.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from revo_contracts.inference import TenantId

AuditAction = Literal[
    "key.created",
    "key.revoked",
    "budget.set",
    "budget.deleted",
    "integration.added",
    "integration.removed",
    "run.cancelled",
    "memory.forgotten",
    "credentials.issued",
    "credentials.revoked",
]
# Events about the platform itself (an operator's credentials) rather than one tenant.
PLATFORM_TENANT = "_platform"
Detail = str | int | float | bool | None


class AuditEvent(msgspec.Struct, kw_only=True, omit_defaults=True):
    # Unique; the stream's Nats-Msg-Id and the table's key (a redelivery is stored once).
    event_id: Annotated[str, Meta(pattern=r"^[A-Za-z0-9_.:-]{1,128}$")]
    tenant: TenantId
    at: float
    # Who: "operator", "key:<key id>", "user:<subject>", "run:<run id>".
    actor: Annotated[str, Meta(min_length=1, max_length=300)]
    action: AuditAction
    # What it was done to: a key id, a run id, a budget's scope, a credential's public key.
    target: Annotated[str, Meta(max_length=300)] = ""
    # The service that did it.
    service: Annotated[str, Meta(max_length=64)] = ""
    details: dict[Annotated[str, Meta(max_length=64)], Detail] = {}


class AuditListRequest(msgspec.Struct, kw_only=True, omit_defaults=True):
    tenant: TenantId | None = None
    # Unix time; bounded so no date arithmetic can overflow (1970 through the year 9999).
    since: Annotated[float, Meta(ge=0, le=253_402_300_799)] | None = None
    action: AuditAction | None = None
    limit: Annotated[int, Meta(ge=1, le=1000)] = 100


class AuditListResponse(msgspec.Struct, kw_only=True):
    # Newest first.
    events: list[AuditEvent]
