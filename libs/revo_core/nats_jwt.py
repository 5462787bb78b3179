"""NATS JWTs (operator, account, user) signed with nkeys, and `.creds` files.

The format is nats-server's decentralised auth (jwt v2): a JWT of header
`{"typ":"JWT","alg":"ed25519-nkey"}`, the claims, and the ed25519 signature of the issuer's
nkey over `header.claims`, each part base64url without padding.

Written here rather than taken from PyPI's `nats-jwt` (0.2.2, the only maintained-looking
package): it encodes a user's response permission as `{"max_msgs", "expires"}` where
nats-server reads `{"max", "ttl"}`, so the server silently drops it (checked 2026-12-02:
encode a user with `resp` and read the payload back), and it pins pytz<2025 and four other
packages. What revo needs is the ~40 lines below, checked against the real server by
libs/tests/test_bus_auth.py.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from typing import Any

import nkeys

_HEADER = {"typ": "JWT", "alg": "ed25519-nkey"}
CREDS_TEMPLATE = """-----BEGIN NATS USER JWT-----
{jwt}
------END NATS USER JWT------

************************* IMPORTANT *************************
NKEY Seed printed below can be used to sign and prove identity.
NKEYs are sensitive and should be treated as secrets.

-----BEGIN USER NKEY SEED-----
{seed}
------END USER NKEY SEED------

*************************************************************
"""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


def encode(claims_nats: dict[str, Any], subject: str, name: str, issuer: nkeys.KeyPair,
           expires_at: float | None = None) -> str:  # fmt: skip
    """A JWT for `subject` (a public nkey) signed by `issuer`; `claims_nats` is the `nats`
    claim (its `type` says operator, account or user)."""
    claims: dict[str, Any] = {
        "sub": subject,
        "name": name,
        "iat": int(time.time()),
        "iss": issuer.public_key.decode(),
        "nats": {**claims_nats, "version": 2},
    }
    if expires_at:
        claims["exp"] = int(expires_at)
    # The id is the hash of the claims without it, as nats-io/jwt computes it.
    claims["jti"] = base64.b32encode(hashlib.sha256(_json(claims)).digest()).decode().rstrip("=")
    signed = f"{_b64(_json(_HEADER))}.{_b64(_json(claims))}"
    return f"{signed}.{_b64(issuer.sign(signed.encode()))}"


def claims_of(jwt: str) -> dict[str, Any]:
    """The claims of a JWT, unverified (the server verifies; we only read our own files)."""
    payload = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def creds_file(jwt: str, seed: bytes) -> str:
    """The `.creds` text every NATS client reads (nats-py's `user_credentials=`)."""
    return CREDS_TEMPLATE.format(jwt=jwt, seed=seed.decode())


def jwt_of_creds(text: str) -> str:
    lines = text.splitlines()
    start = lines.index("-----BEGIN NATS USER JWT-----")
    return lines[start + 1].strip()


def creds_claims(text: str) -> dict[str, Any]:
    """The claims of a `.creds` text's user JWT: `sub` is its public key, `name` its
    identity."""
    return claims_of(jwt_of_creds(text))
