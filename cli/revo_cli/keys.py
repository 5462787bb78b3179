"""`revo keys create --tenant T [--role admin|member] [--name N]`: a new API key of the chat
gateway, printed once (the gateway stores only a hash of it)."""

from __future__ import annotations

import argparse
import asyncio
import sys

import msgspec

from revo_cli.service_call import EXIT_OK, EXIT_USAGE, call_service, fail
from revo_contracts import subjects
from revo_contracts.gateway import KeyCreateRequest, KeyCreateResponse
from revo_core.bus import Bus
from revo_core.codec import decode
from revo_core.errors import InvalidRequest


def keys_command(args: argparse.Namespace, nats_url: str) -> int:
    try:
        # Through the decoder, so a bad tenant is refused here with the contract's words.
        request = decode(_encode(args), KeyCreateRequest)
    except InvalidRequest as exc:
        return fail(f"error: {exc.message}", EXIT_USAGE)
    return asyncio.run(_create(nats_url, request))


def _encode(args: argparse.Namespace) -> bytes:
    fields = {"tenant": args.tenant, "role": args.role}
    if args.name:
        fields["name"] = args.name
    return msgspec.json.encode(fields)


async def _create(nats_url: str, request: KeyCreateRequest) -> int:
    async def command(bus: Bus) -> int:
        created = await bus.request(subjects.GATEWAY_KEYS_CREATE, request, KeyCreateResponse)
        print(created.key)
        print(
            f"key {created.key_id} for tenant {created.tenant} ({created.role}); "
            "it is shown this once: keep it now.",
            file=sys.stderr,
        )
        return EXIT_OK

    return await call_service(nats_url, "chat-gateway", command)
