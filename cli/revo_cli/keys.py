"""`revo keys create --tenant T [--role admin|member] [--name N]`: a new API key of the chat
gateway, printed once (the gateway stores only a hash of it)."""

from __future__ import annotations

import argparse
import asyncio
import sys

import msgspec

from revo_contracts import subjects
from revo_contracts.gateway import KeyCreateRequest, KeyCreateResponse
from revo_core.bus import Bus
from revo_core.codec import decode
from revo_core.errors import BusUnavailable, InvalidRequest, ServiceError

EXIT_FAILED = 1
EXIT_USAGE = 2


def keys_command(args: argparse.Namespace, nats_url: str) -> int:
    try:
        # Through the decoder, so a bad tenant is refused here with the contract's words.
        request = decode(_encode(args), KeyCreateRequest)
    except InvalidRequest as exc:
        return _fail(f"error: {exc.message}", EXIT_USAGE)
    return asyncio.run(_create(nats_url, request))


def _encode(args: argparse.Namespace) -> bytes:
    fields = {"tenant": args.tenant, "role": args.role}
    if args.name:
        fields["name"] = args.name
    return msgspec.json.encode(fields)


async def _create(nats_url: str, request: KeyCreateRequest) -> int:
    try:
        bus = await Bus.connect(nats_url, name="revo-cli", connect_timeout=1, connect_attempts=1)
    except BusUnavailable:
        return _fail(f"cannot reach NATS at {nats_url}; is `revo up` running?", EXIT_USAGE)
    try:
        created = await bus.request(subjects.GATEWAY_KEYS_CREATE, request, KeyCreateResponse)
    except BusUnavailable:
        return _fail(f"no chat-gateway answers on NATS at {nats_url}", EXIT_USAGE)
    except ServiceError as exc:
        return _fail(f"error: {exc}")
    finally:
        await bus.close()
    print(created.key)
    print(
        f"key {created.key_id} for tenant {created.tenant} ({created.role}); "
        "it is shown this once: keep it now.",
        file=sys.stderr,
    )
    return 0


def _fail(message: str, status: int = EXIT_FAILED) -> int:
    print(message, file=sys.stderr, flush=True)
    return status
