"""API keys: `revo_<key id>_<secret>`, shown once; Postgres keeps only sha256(secret).

The secret is 32 random bytes, so a plain hash is enough (no password stretching needed);
lookups go by key id and the hash is compared in constant time. A key may expire, and is
revoked by its id; operators list, create and revoke keys over NATS (`gateway.keys.*`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

import asyncpg

from revo_contracts.gateway import (
    KeyCreateRequest,
    KeyCreateResponse,
    KeyInfo,
    KeyListRequest,
    KeyListResponse,
    KeyRevokeRequest,
    KeyRevokeResponse,
)
from revo_core.errors import NotFound

PREFIX = "revo_"
# A key's last use is written at most this often.
TOUCH_EVERY_S = 60
# Keys whose last write this replica remembers (so it skips them for a minute).
TOUCHED_KEPT = 10_000


@dataclass(frozen=True)
class Principal:
    """Who a request is from: every request is bound to this tenant."""

    tenant: str
    # The API key id, or the token's subject.
    subject: str
    role: str
    via: str  # "api_key" or "jwt"
    # When the credential stops working (unix time): a chat socket is closed then.
    expires_at: float | None = None

    @property
    def owner(self) -> str:
        """Who owns the sessions and runs this principal starts: `api_key:<key id>` or
        `jwt:<subject>` (the prefix keeps a token's subject from passing for a key)."""
        return f"{self.via}:{self.subject}"

    def user(self, claimed: str | None = None) -> str:
        """The user a run is for (agents recall and remember that user's memories).

        A JWT's subject: the token vouches for it, so a claim cannot override it. Behind
        an API key, the end user the application names (OpenAI's `user` field), else the
        key itself."""
        if self.via == "jwt":
            return self.subject
        return claimed or f"key:{self.subject}"


class KeyRefused(Exception):
    """The key is not accepted; the message says why (for the 401 body)."""


def audit_actor(principal: Principal) -> str:
    """Who did it, as the audit log names people: `key:<key id>` or `user:<subject>`."""
    return f"key:{principal.subject}" if principal.via == "api_key" else f"user:{principal.subject}"


class KeyStore:
    """Keys in Postgres. Every request's key is looked up there (no cache: one primary-key
    read, so a revoked or expired key is refused by every replica at once); its last use
    is written at most once a minute per key."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self._touched: dict[str, float] = {}  # key id -> monotonic time of the last write

    async def create(self, request: KeyCreateRequest) -> KeyCreateResponse:
        key_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        expires_at = await self.pool.fetchval(
            "INSERT INTO gateway.api_keys (key_id, tenant, role, secret_hash, name, expires_at) "
            "VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6)) "
            "RETURNING extract(epoch FROM expires_at)::float8",
            key_id,
            request.tenant,
            request.role,
            _hash(secret),
            request.name,
            request.expires_in_s,
        )
        return KeyCreateResponse(
            key_id=key_id,
            key=f"{PREFIX}{key_id}_{secret}",
            tenant=request.tenant,
            role=request.role,
            expires_at=expires_at,
        )

    async def verify(self, key: str) -> Principal:
        """The key's principal; KeyRefused unless it is known, not revoked, not expired."""
        parsed = _parse(key)
        if parsed is None:
            raise KeyRefused("invalid API key")
        key_id, secret = parsed
        row = await self.pool.fetchrow(
            "SELECT tenant, role, secret_hash, revoked_at IS NOT NULL AS revoked, "
            "  coalesce(expires_at <= now(), false) AS expired, "
            "  extract(epoch FROM expires_at)::float8 AS expires_at "
            "FROM gateway.api_keys WHERE key_id = $1",
            key_id,
        )
        if row is None or not hmac.compare_digest(bytes(row["secret_hash"]), _hash(secret)):
            raise KeyRefused("invalid API key")
        # Said only to whoever holds the whole key.
        if row["revoked"]:
            raise KeyRefused("API key revoked")
        if row["expired"]:
            raise KeyRefused("API key expired")
        await self._touch(key_id)
        return Principal(
            tenant=row["tenant"],
            subject=key_id,
            role=row["role"],
            via="api_key",
            expires_at=row["expires_at"],
        )

    async def _touch(self, key_id: str) -> None:
        """Record the key's use, at most once a minute per key: this replica skips a key it
        wrote less than a minute ago, and the write itself skips a key another replica
        wrote less than a minute ago."""
        now = time.monotonic()
        if now - self._touched.get(key_id, -TOUCH_EVERY_S) < TOUCH_EVERY_S:
            return
        if len(self._touched) >= TOUCHED_KEPT:
            self._touched = {k: t for k, t in self._touched.items() if now - t < TOUCH_EVERY_S}
            if len(self._touched) >= TOUCHED_KEPT:
                self._touched.clear()  # that many keys in use: an extra write each, once
        self._touched[key_id] = now
        await self.pool.execute(
            "UPDATE gateway.api_keys SET last_used_at = now() WHERE key_id = $1 "
            "AND (last_used_at IS NULL OR last_used_at < now() - make_interval(secs => $2))",
            key_id,
            TOUCH_EVERY_S,
        )

    async def list(self, request: KeyListRequest) -> KeyListResponse:
        rows = await self.pool.fetch(
            "SELECT key_id, tenant, role, name, "
            "  extract(epoch FROM created_at)::float8 AS created_at, "
            "  extract(epoch FROM expires_at)::float8 AS expires_at, "
            "  extract(epoch FROM last_used_at)::float8 AS last_used_at, "
            "  extract(epoch FROM revoked_at)::float8 AS revoked_at "
            "FROM gateway.api_keys "
            "WHERE ($1::text IS NULL OR tenant = $1) AND ($2 OR revoked_at IS NULL) "
            "ORDER BY tenant, created_at, key_id",
            request.tenant,
            request.include_revoked,
        )
        return KeyListResponse(keys=[KeyInfo(**dict(row)) for row in rows])

    async def revoke(
        self, request: KeyRevokeRequest, tenant: str | None = None
    ) -> tuple[KeyRevokeResponse, bool]:
        """Revoke the key (with a tenant: only if it is that tenant's); also whether this
        call revoked it (False: it was already)."""
        row = await self.pool.fetchrow(
            "UPDATE gateway.api_keys k SET revoked_at = coalesce(k.revoked_at, now()) "
            "FROM (SELECT key_id, revoked_at FROM gateway.api_keys WHERE key_id = $1 "
            "      AND ($2::text IS NULL OR tenant = $2) FOR UPDATE) before "
            "WHERE k.key_id = before.key_id "
            "RETURNING k.tenant, extract(epoch FROM k.revoked_at)::float8 AS revoked_at, "
            "  before.revoked_at IS NULL AS newly",
            request.key_id,
            tenant,
        )
        if row is None:
            raise NotFound(f"no API key {request.key_id!r}", {"key_id": request.key_id})
        revoked = KeyRevokeResponse(
            key_id=request.key_id, tenant=row["tenant"], revoked_at=row["revoked_at"]
        )
        return revoked, row["newly"]


def looks_like_key(credential: str) -> bool:
    return credential.startswith(PREFIX)


def _parse(key: str) -> tuple[str, str] | None:
    if not key.startswith(PREFIX):
        return None
    key_id, _, secret = key[len(PREFIX) :].partition("_")
    if len(key_id) != 16 or not secret:
        return None
    return key_id, secret


def _hash(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()
