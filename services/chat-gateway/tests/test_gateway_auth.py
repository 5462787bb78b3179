"""Credentials: API keys (hash only stored) and JWTs; every bad one is a clear 401."""

from __future__ import annotations

import asyncio
import base64
import json
import time

import asyncpg
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from gateway_testkit import base_url, hs256_token, http

from revo_core.testing.fixtures import create_api_key


async def _get(url: str, token: str | None):
    return await asyncio.to_thread(http, "GET", url, token)


async def test_an_api_key_is_accepted_and_only_its_hash_is_stored(
    scripted_gateway, scripted_bus, postgres
):
    key = await create_api_key(scripted_bus, "acme")

    status, _, body = await _get(f"{base_url(scripted_gateway)}/v1/whoami", key)

    assert status == 200, body
    assert body == {"tenant": "acme", "role": "member", "via": "api_key"}
    conn = await asyncpg.connect(postgres.dsn)
    try:
        stored = await conn.fetch("SELECT * FROM gateway.api_keys")
    finally:
        await conn.close()
    secret = key.split("_", 2)[2]
    assert all(secret not in repr(dict(row)) for row in stored)


async def test_missing_wrong_and_malformed_credentials_are_401(scripted_gateway, scripted_bus):
    key = await create_api_key(scripted_bus, "acme")
    url = f"{base_url(scripted_gateway)}/v1/whoami"
    wrong_secret = key[: key.rindex("_") + 1] + "x" * 43

    for token, said in [
        (None, "missing credentials"),
        (wrong_secret, "invalid API key"),
        ("revo_short_x", "invalid API key"),
        ("not-a-token", "malformed token"),
    ]:
        status, _, body = await _get(url, token)
        assert status == 401, (token, body)
        assert said in body["error"]["message"], body
        assert body["error"]["code"] == "unauthorized"


async def test_jwt_edge_cases(scripted_gateway):
    url = f"{base_url(scripted_gateway)}/v1/whoami"
    good = hs256_token(role="admin")
    expired = hs256_token(exp=int(time.time()) - 10)
    wrong_audience = hs256_token(aud="someone-else")
    wrong_key = jwt.encode(
        {"sub": "u", "tenant": "acme", "aud": "revo", "exp": int(time.time()) + 60},
        "not-the-secret-not-the-secret-0123",
        algorithm="HS256",
    )
    no_tenant = hs256_token(tenant="../etc")
    unsigned = _unsigned_token({"sub": "u", "tenant": "acme", "aud": "revo", "exp": 2**31})
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rs256 = jwt.encode(
        {"sub": "u", "tenant": "acme", "aud": "revo", "exp": int(time.time()) + 60},
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        algorithm="RS256",
    )

    status, _, body = await _get(url, good)
    assert status == 200 and body == {"tenant": "acme", "role": "admin", "via": "jwt"}
    for token, said in [
        (expired, "token expired"),
        (wrong_audience, "rejected"),
        (wrong_key, "rejected"),
        (no_tenant, "tenant"),
        (unsigned, "'none' is not accepted"),
        (rs256, "'RS256' is not accepted"),
        (hs256_token(sub="u" * 300), "`sub` must be 1 to 256 characters"),  # runs carry 256
        (hs256_token(sub=""), "`sub` must be 1 to 256 characters"),
    ]:
        status, _, body = await _get(url, token)
        assert status == 401, (said, body)
        assert said in body["error"]["message"], (said, body)


def _unsigned_token(claims: dict) -> str:
    def part(value: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


async def test_health_needs_no_credentials(scripted_gateway):
    status, _, body = await _get(f"{base_url(scripted_gateway)}/readyz", None)
    assert status == 200 and body == {"ready": True}
