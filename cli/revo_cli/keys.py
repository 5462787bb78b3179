"""`revo keys create|list|revoke`: the chat gateway's API keys, over NATS.

`create --tenant T [--role R] [--name N] [--expires 30d]` prints a new key once (the gateway
stores only a hash of it); `list [--tenant T] [--all]` shows keys without their secrets;
`revoke KEY_ID` stops a key on every gateway replica.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import typing

import msgspec

from revo_cli.run_output import table
from revo_cli.service_call import EXIT_OK, EXIT_USAGE, call_service, fail
from revo_contracts import subjects
from revo_contracts.gateway import (
    KeyCreateRequest,
    KeyCreateResponse,
    KeyInfo,
    KeyListRequest,
    KeyListResponse,
    KeyRevokeRequest,
    KeyRevokeResponse,
    Role,
)
from revo_core import when
from revo_core.bus import Bus
from revo_core.codec import decode
from revo_core.errors import InvalidRequest

ROLES = typing.get_args(Role)
LIST_COLUMNS = ("KEY ID", "TENANT", "ROLE", "NAME", "CREATED", "EXPIRES", "LAST USED", "STATE")


def add_keys_parser(commands: argparse._SubParsersAction) -> None:
    keys = commands.add_parser("keys", help="API keys of the chat gateway")
    actions = keys.add_subparsers(dest="keys_command", required=True)
    create = actions.add_parser("create", help="create a key; it is printed once")
    create.add_argument("--tenant", required=True)
    create.add_argument("--role", choices=ROLES, default="member")
    create.add_argument("--name", help="what the key is for, to tell keys apart")
    create.add_argument("--expires", help="stop working after this long: 30d, 12h, 90m")
    listing = actions.add_parser("list", help="the keys, without their secrets")
    listing.add_argument("--tenant", help="one tenant's keys (default: every tenant's)")
    listing.add_argument("--all", action="store_true", help="revoked keys too")
    revoke = actions.add_parser("revoke", help="stop a key, on every gateway replica")
    revoke.add_argument("key_id", help="the id `keys list` shows (revo_<key id>_...)")


def keys_command(args: argparse.Namespace, nats_url: str) -> int:
    try:
        # Through the decoder, so bad input is refused here with the contract's words.
        request = _request(args)
    except (InvalidRequest, ValueError) as exc:
        return fail(f"error: {getattr(exc, 'message', exc)}", EXIT_USAGE)
    action = {"create": _create, "list": _list, "revoke": _revoke}[args.keys_command]

    async def command(bus: Bus) -> int:
        return await action(bus, request)

    return asyncio.run(call_service(nats_url, "chat-gateway", command))


def _request(args: argparse.Namespace) -> msgspec.Struct:
    if args.keys_command == "create":
        fields = {"tenant": args.tenant, "role": args.role, "name": args.name}
        if args.expires is not None:
            fields["expires_in_s"] = duration_s(args.expires)
        return _decoded(fields, KeyCreateRequest)
    if args.keys_command == "list":
        return _decoded({"tenant": args.tenant, "include_revoked": args.all}, KeyListRequest)
    return _decoded({"key_id": key_id_of(args.key_id)}, KeyRevokeRequest)


def _decoded(fields: dict, kind: type[msgspec.Struct]) -> msgspec.Struct:
    present = {name: value for name, value in fields.items() if value is not None}
    return decode(msgspec.json.encode(present), kind)


def key_id_of(text: str) -> str:
    """The id of `revo_<key id>_<secret>`, or the text as it is (an id already)."""
    return text.split("_")[1] if text.startswith("revo_") and text.count("_") >= 2 else text


def duration_s(text: str) -> int:
    seconds = when.duration_s(text)
    if seconds is None:
        raise ValueError(f"cannot read {text!r} as a duration: use 30d, 12h or 90m")
    return seconds


async def _create(bus: Bus, request: KeyCreateRequest) -> int:
    created = await bus.request(subjects.GATEWAY_KEYS_CREATE, request, KeyCreateResponse)
    print(created.key)
    expiry = f", expires {_when(created.expires_at)}" if created.expires_at else ""
    print(
        f"key {created.key_id} for tenant {created.tenant} ({created.role}{expiry}); "
        "it is shown this once: keep it now.",
        file=sys.stderr,
    )
    return EXIT_OK


async def _list(bus: Bus, request: KeyListRequest) -> int:
    listed = await bus.request(subjects.GATEWAY_KEYS_LIST, request, KeyListResponse)
    if not listed.keys:
        print("no keys", file=sys.stderr)
        return EXIT_OK
    now = time.time()
    for line in table(LIST_COLUMNS, [_row(key, now) for key in listed.keys]):
        print(line)
    return EXIT_OK


def _row(key: KeyInfo, now: float) -> tuple[str, ...]:
    return (
        key.key_id,
        key.tenant,
        key.role,
        key.name or "-",
        _when(key.created_at),
        _when(key.expires_at) if key.expires_at else "never",
        _when(key.last_used_at) if key.last_used_at else "never",
        _state(key, now),
    )


def _state(key: KeyInfo, now: float) -> str:
    if key.revoked_at is not None:
        return f"revoked {_when(key.revoked_at)}"
    if key.expires_at is not None and key.expires_at <= now:
        return "expired"
    return "active"


async def _revoke(bus: Bus, request: KeyRevokeRequest) -> int:
    revoked = await bus.request(subjects.GATEWAY_KEYS_REVOKE, request, KeyRevokeResponse)
    print(f"key {revoked.key_id} of tenant {revoked.tenant} revoked {_when(revoked.revoked_at)}")
    return EXIT_OK


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))
