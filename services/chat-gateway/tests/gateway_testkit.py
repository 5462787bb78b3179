"""Shared helpers of the chat-gateway tests."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import jwt

from revo_contracts import subjects
from revo_contracts.audit import AuditEvent, AuditListRequest, AuditListResponse
from revo_core.testing.fixtures import GATEWAY_JWT_SECRET


def http(method: str, url: str, token: str | None = None, body: Any = None, timeout: float = 30):
    """(status, headers, parsed JSON body) of one plain HTTP request."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), _json(response.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), _json(error.read())


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")


def base_url(gateway) -> str:
    return f"http://127.0.0.1:{gateway.http_port}"


def hs256_token(tenant: str = "acme", **claims: Any) -> str:
    payload = {"sub": "user-1", "tenant": tenant, "aud": "revo", "exp": int(time.time()) + 300}
    payload.update(claims)
    return jwt.encode(payload, GATEWAY_JWT_SECRET, algorithm="HS256")


def openai_client(gateway, key: str):
    """The official client on the gateway; no retries, so a test sees the first answer."""
    import openai

    return openai.AsyncOpenAI(base_url=f"{base_url(gateway)}/v1", api_key=key, max_retries=0)


@contextmanager
def scripted_default(model, script) -> Iterator[None]:
    """Every run without its own script plays `script` (the gateway picks the run ids).

    On the way out every gate of the script opens: a test that failed mid-way leaves no
    run waiting on the model that all tests share."""
    model.default = script
    try:
        yield
    finally:
        model.default = None
        for reply in [*script.replies, *script.retries.values(), script.forever]:
            if reply is not None and reply.gate is not None:
                reply.gate.set()


AUDIT_WAIT_S = 10.0


async def audit_of(bus, tenant: str, count: int, **filters) -> list[AuditEvent]:
    """The tenant's audit events once `count` of them are kept (the keeper is a consumer)."""
    end = time.monotonic() + AUDIT_WAIT_S
    while True:
        response = await bus.request(
            subjects.GATEWAY_AUDIT_LIST,
            AuditListRequest(tenant=tenant, **filters),
            AuditListResponse,
        )
        if len(response.events) >= count or time.monotonic() > end:
            return response.events
        await asyncio.sleep(0.1)
