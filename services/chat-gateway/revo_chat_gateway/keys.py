"""API keys: `revo_<key id>_<secret>`, shown once; Postgres keeps only sha256(secret).

The secret is 32 random bytes, so a plain hash is enough (no password stretching needed);
lookups go by key id and the hash is compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

import asyncpg

from revo_contracts.gateway import KeyCreateRequest, KeyCreateResponse

PREFIX = "revo_"


@dataclass(frozen=True)
class Principal:
    """Who a request is from: every request is bound to this tenant."""

    tenant: str
    # The API key id, or the token's subject.
    subject: str
    role: str
    via: str  # "api_key" or "jwt"

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


class KeyStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def create(self, request: KeyCreateRequest) -> KeyCreateResponse:
        key_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        await self.pool.execute(
            "INSERT INTO gateway.api_keys (key_id, tenant, role, secret_hash, name) "
            "VALUES ($1, $2, $3, $4, $5)",
            key_id,
            request.tenant,
            request.role,
            _hash(secret),
            request.name,
        )
        return KeyCreateResponse(
            key_id=key_id,
            key=f"{PREFIX}{key_id}_{secret}",
            tenant=request.tenant,
            role=request.role,
        )

    async def verify(self, key: str) -> Principal | None:
        parsed = _parse(key)
        if parsed is None:
            return None
        key_id, secret = parsed
        row = await self.pool.fetchrow(
            "SELECT tenant, role, secret_hash FROM gateway.api_keys "
            "WHERE key_id = $1 AND revoked_at IS NULL",
            key_id,
        )
        if row is None or not hmac.compare_digest(bytes(row["secret_hash"]), _hash(secret)):
            return None
        return Principal(tenant=row["tenant"], subject=key_id, role=row["role"], via="api_key")


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
