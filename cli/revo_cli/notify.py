"""`revo notify dead|redrive` and `revo integrations test`: the integrations service's
notifications out, over NATS (operators).

`notify dead [--tenant T] [--channel C]` lists notifications that failed every attempt,
with their last error; `notify redrive ID | --all [--tenant T]` sends them again (the same
notification id: what was already posted is updated, not posted twice);
`integrations test KIND --tenant T` sends a real test notification through the tenant's
integration and prints what the destination answered.

Exit status: 0 done (for `test`: the destination took it), 1 refused (or the destination
refused the test), 2 bad usage or no service to talk to.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import typing

import msgspec

from revo_cli.run_output import table
from revo_cli.service_call import EXIT_FAILED, EXIT_OK, EXIT_USAGE, call_service, fail
from revo_contracts import subjects
from revo_contracts.integrations import (
    Done,
    IntegrationKind,
    IntegrationRef,
    IntegrationTestResult,
)
from revo_contracts.notify import (
    CHANNELS,
    NotifyDeadLetter,
    NotifyDeadListRequest,
    NotifyDeadListResponse,
    NotifyRedriveRequest,
)
from revo_core.bus import Bus

DEAD_COLUMNS = (
    "DEAD AT (UTC)",
    "TENANT",
    "CHANNEL",
    "NOTIFICATION",
    "ATTEMPTS",
    "TITLE",
    "LAST ERROR",
)
SERVICE = "integrations"


def add_notify_parser(commands: argparse._SubParsersAction) -> None:
    notify = commands.add_parser("notify", help="notifications that could not be delivered")
    actions = notify.add_subparsers(dest="notify_command", required=True)
    dead = actions.add_parser("dead", help="list dead letters (every attempt failed)")
    dead.add_argument("--tenant", help="one tenant's (default: every tenant's)")
    dead.add_argument("--channel", choices=CHANNELS)
    dead.add_argument("--limit", type=int, default=100, help="at most this many (1-1000)")
    redrive = actions.add_parser("redrive", help="send dead letters again")
    redrive.add_argument("notification_id", nargs="?", help="the NOTIFICATION `dead` shows")
    redrive.add_argument("--all", action="store_true", help="every dead letter (of --tenant)")
    redrive.add_argument("--tenant")


def add_integrations_test_parser(actions: argparse._SubParsersAction) -> None:
    """`integrations test`, for the `integrations` command group (add/list/remove join it)."""
    test = actions.add_parser("test", help="send a real test notification, print the answer")
    test.add_argument("kind", choices=typing.get_args(IntegrationKind))
    test.add_argument("--tenant", required=True)


def notify_command(args: argparse.Namespace, nats_url: str) -> int:
    try:
        command = _command(args)
    except (ValueError, msgspec.ValidationError) as exc:
        return fail(f"error: {exc}", EXIT_USAGE)
    return asyncio.run(call_service(nats_url, SERVICE, command))


def integrations_test_command(args: argparse.Namespace, nats_url: str) -> int:
    try:
        ref = msgspec.convert({"tenant": args.tenant, "kind": args.kind}, IntegrationRef)
    except msgspec.ValidationError as exc:
        return fail(f"error: {exc}", EXIT_USAGE)
    return asyncio.run(call_service(nats_url, SERVICE, lambda bus: _test(bus, ref)))


def _command(args: argparse.Namespace):
    if args.notify_command == "dead":
        fields = {"tenant": args.tenant, "channel": args.channel, "limit": args.limit}
        request = msgspec.convert(
            {k: v for k, v in fields.items() if v is not None}, NotifyDeadListRequest
        )
        return lambda bus: _dead(bus, request)
    if bool(args.notification_id) == bool(args.all):
        raise ValueError("name one notification id, or --all")
    fields = {"notification_id": args.notification_id, "all": args.all, "tenant": args.tenant}
    redrive = msgspec.convert({k: v for k, v in fields.items() if v}, NotifyRedriveRequest)
    return lambda bus: _redrive(bus, redrive)


async def _dead(bus: Bus, request: NotifyDeadListRequest) -> int:
    response = await bus.request(
        subjects.INTEGRATIONS_NOTIFY_DEAD_LIST, request, NotifyDeadListResponse
    )
    if not response.dead:
        print("no dead letters.")
        return EXIT_OK
    print("\n".join(table(DEAD_COLUMNS, [_row(letter) for letter in response.dead])))
    return EXIT_OK


def _row(letter: NotifyDeadLetter) -> tuple[str, ...]:
    dead = letter.dead
    note = dead.notification
    return (
        time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(dead.dead_at)),
        note.tenant,
        note.channel,
        note.notification_id,
        str(dead.attempts),
        note.title[:40],
        dead.last_error.replace("\n", " ")[:80],
    )


async def _redrive(bus: Bus, request: NotifyRedriveRequest) -> int:
    done = await bus.request(subjects.INTEGRATIONS_NOTIFY_REDRIVE, request, Done, timeout=30)
    print(f"redriven: {done.count}")
    return EXIT_OK


async def _test(bus: Bus, ref: IntegrationRef) -> int:
    result = await bus.request(
        subjects.INTEGRATIONS_CONFIG_TEST, ref, IntegrationTestResult, timeout=30
    )
    status = result.status if result.status is not None else "-"
    verdict = "delivered" if result.delivered else "refused"
    print(f"{ref.kind} ({ref.tenant}): {verdict}, status {status}")
    if result.detail:
        print(result.detail)
    return EXIT_OK if result.delivered else EXIT_FAILED
