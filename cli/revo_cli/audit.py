"""`revo audit [--tenant T] [--since 7d] [--action A] [--limit N]`: who did what, newest
first, from the chat gateway's audit log (`gateway.audit.list`, operators only).

Exit status: 0 done, 1 the gateway refused, 2 bad usage or no gateway to talk to.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import typing

import msgspec

from revo_cli.run_output import table
from revo_cli.service_call import EXIT_OK, EXIT_USAGE, call_service, fail
from revo_contracts import subjects
from revo_contracts.audit import AuditAction, AuditEvent, AuditListRequest, AuditListResponse
from revo_core.bus import Bus
from revo_core.when import parse_when

COLUMNS = ("WHEN (UTC)", "TENANT", "ACTOR", "ACTION", "TARGET", "SERVICE", "DETAILS")


def add_audit_parser(commands: argparse._SubParsersAction) -> None:
    audit = commands.add_parser("audit", help="who did what: keys, budgets, cancels, forgets")
    audit.add_argument("--tenant", help="only this tenant (default: all)")
    audit.add_argument("--since", help="7d, 12h, 2026-11-01 or a unix time (default: all)")
    audit.add_argument("--action", choices=typing.get_args(AuditAction))
    audit.add_argument("--limit", type=int, default=100, help="at most this many (1-1000)")


def audit_command(args: argparse.Namespace, nats_url: str) -> int:
    try:
        fields = {"tenant": args.tenant, "since": parse_when(args.since), "action": args.action}
        fields = {name: value for name, value in fields.items() if value is not None}
        request = msgspec.convert({**fields, "limit": args.limit}, AuditListRequest)
    except (ValueError, msgspec.ValidationError) as exc:
        return fail(f"error: {exc}", EXIT_USAGE)
    return asyncio.run(call_service(nats_url, "chat-gateway", lambda bus: _list(bus, request)))


async def _list(bus: Bus, request: AuditListRequest) -> int:
    response = await bus.request(subjects.GATEWAY_AUDIT_LIST, request, AuditListResponse)
    if not response.events:
        print("no audit events match.")
        return EXIT_OK
    print("\n".join(table(COLUMNS, [_row(event) for event in response.events])))
    return EXIT_OK


def _row(event: AuditEvent) -> tuple[str, ...]:
    details = " ".join(f"{k}={v}" for k, v in event.details.items() if v is not None)
    return (
        time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(event.at)),
        event.tenant,
        event.actor,
        event.action,
        event.target,
        event.service,
        details,
    )
