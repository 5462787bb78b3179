"""`revo integrations add|list|remove` and `revo ci-policy show|set`: the integrations
service's tenants' integrations and CI policies, over NATS (operators only).
`revo integrations test` is revo_cli.notify's.

A secret option (`--token`, `--webhook-secret`, ...) takes its value from the command line,
from an environment variable (`--token-env NAME`), or from a prompt (`--token -`; a line of
stdin when stdin is no terminal), so it need not end up in the shell's history. The service
keeps secrets encrypted and never shows them again: `list` prints masks.

Exit status: 0 done, 1 the service refused, 2 bad usage or no integrations service.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import re
import sys
import time
import typing

import msgspec

from revo_cli.notify import add_integrations_test_parser
from revo_cli.run_output import table
from revo_cli.service_call import EXIT_OK, EXIT_USAGE, call_service, fail
from revo_contracts import subjects
from revo_contracts.integrations import (
    KINDS,
    SECRET_FIELDS,
    CiPolicy,
    Done,
    Integration,
    IntegrationInfo,
    IntegrationListRequest,
    IntegrationListResponse,
    IntegrationPut,
    IntegrationRef,
    PolicyGet,
    PolicyPut,
)
from revo_contracts.notify import CHANNELS
from revo_core.bus import Bus
from revo_core.codec import decode
from revo_core.errors import InvalidRequest

SERVICE = "integrations"
# Every secret field of any kind: each gets `--<field>` and `--<field>-env NAME`.
SECRETS = tuple(dict.fromkeys(name for names in SECRET_FIELDS.values() for name in names))
# The other fields an operator sets, as `--<field>`.
SETTINGS = ("api_url", "channel", "site", "project", "email", "url", "issue_type")
SWITCHES = ("check_runs", "comments")  # GitHub's, on by default: `--no-check-runs`
LIST_COLUMNS = ("TENANT", "KIND", "SETTINGS", "UPDATED")
PROMPT = "-"
_WINDOW = re.compile(r"^(\d+(?:\.\d+)?)([smhd]?)$")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400}
_KIND_OF = {kind.__struct_config__.tag: kind for kind in typing.get_args(Integration)}


class UsageError(ValueError):
    """Bad usage, found before anything is sent."""


def add_integrations_parsers(commands: argparse._SubParsersAction) -> None:
    integrations = commands.add_parser(
        "integrations", help="tenants' GitHub, GitLab, Slack, Jira and webhook integrations"
    )
    actions = integrations.add_subparsers(dest="integrations_command", required=True)
    add = actions.add_parser("add", help="add or replace a tenant's integration of a kind")
    add.add_argument("kind", choices=KINDS)
    add.add_argument("--tenant", required=True)
    for name in SECRETS:
        flag = name.replace("_", "-")
        add.add_argument(f"--{flag}", metavar="VALUE", help=f"{name} ('-': prompt for it)")
        add.add_argument(f"--{flag}-env", metavar="NAME", help=f"{name} from this env variable")
    for name in SETTINGS:
        add.add_argument(f"--{name.replace('_', '-')}")
    for name in SWITCHES:
        add.add_argument(f"--no-{name.replace('_', '-')}", action="store_true")
    listing = actions.add_parser("list", help="integrations, secrets masked")
    listing.add_argument("--tenant", help="one tenant's (default: every tenant's)")
    remove = actions.add_parser("remove", help="remove a tenant's integration of a kind")
    remove.add_argument("kind", choices=KINDS)
    remove.add_argument("--tenant", required=True)
    add_integrations_test_parser(actions)  # `integrations test`: revo_cli.notify

    policy = commands.add_parser("ci-policy", help="what a failing CI event starts, per tenant")
    policy_actions = policy.add_subparsers(dest="policy_command", required=True)
    show = policy_actions.add_parser("show", help="the tenant's CI policy (or the default)")
    show.add_argument("--tenant", required=True)
    change = policy_actions.add_parser("set", help="change the given parts of a CI policy")
    change.add_argument("--tenant", required=True)
    change.add_argument("--agent", help="the agent a failing event starts (ci-debugger)")
    change.add_argument("--repo", action="append", metavar="GLOB", help="repeatable")
    change.add_argument("--any-repo", action="store_true", help="every repository again")
    change.add_argument("--branch", action="append", metavar="GLOB", help="repeatable")
    change.add_argument("--any-branch", action="store_true", help="every branch again")
    change.add_argument("--window", help="one run per failure in this window: 1h, 30m, 90s")
    change.add_argument("--notify", action="append", choices=CHANNELS, help="repeatable")
    change.add_argument("--no-notify", action="store_true", help="announce nowhere")
    state = change.add_mutually_exclusive_group()
    state.add_argument("--enable", action="store_true")
    state.add_argument("--disable", action="store_true")


def integrations_command(args: argparse.Namespace, nats_url: str) -> int:
    try:
        request = _integrations_request(args)
    except (UsageError, InvalidRequest) as exc:
        return fail(f"error: {getattr(exc, 'message', exc)}", EXIT_USAGE)
    action = {"add": _add, "list": _list, "remove": _remove}[args.integrations_command]
    return asyncio.run(call_service(nats_url, SERVICE, lambda bus: action(bus, request)))


def ci_policy_command(args: argparse.Namespace, nats_url: str) -> int:
    try:
        get = decode(msgspec.json.encode({"tenant": args.tenant}), PolicyGet)
        changes = _policy_changes(args) if args.policy_command == "set" else {}
    except (UsageError, InvalidRequest) as exc:
        return fail(f"error: {getattr(exc, 'message', exc)}", EXIT_USAGE)

    async def command(bus: Bus) -> int:
        policy = await bus.request(subjects.INTEGRATIONS_POLICY_GET, get, CiPolicy)
        if args.policy_command == "set":
            policy = _changed(policy, changes)
            put = PolicyPut(tenant=get.tenant, policy=policy)
            await bus.request(subjects.INTEGRATIONS_POLICY_PUT, put, Done)
            print(f"CI policy of tenant {get.tenant} set:", file=sys.stderr)
        print("\n".join(policy_lines(policy)))
        return EXIT_OK

    return asyncio.run(call_service(nats_url, SERVICE, command))


# -- integrations ------------------------------------------------------------------------


def _integrations_request(args: argparse.Namespace) -> msgspec.Struct:
    command = args.integrations_command
    if command == "add":
        fields = {"tenant": args.tenant, "integration": integration_fields(args)}
        return decode(msgspec.json.encode(fields), IntegrationPut)
    if command == "list":
        tenant = {"tenant": args.tenant} if args.tenant else {}
        return decode(msgspec.json.encode(tenant), IntegrationListRequest)
    return decode(msgspec.json.encode({"tenant": args.tenant, "kind": args.kind}), IntegrationRef)


def integration_fields(args: argparse.Namespace) -> dict:
    """The integration's fields from the options; an option the kind has no field for is
    refused, rather than dropped without a word."""
    own = {field.name for field in msgspec.structs.fields(_KIND_OF[args.kind])}
    given: dict = {name: secret_value(args, name) for name in SECRETS}
    given.update({name: getattr(args, name) for name in SETTINGS})
    given.update({name: False for name in SWITCHES if getattr(args, f"no_{name}")})
    given = {name: value for name, value in given.items() if value is not None}
    foreign = [name for name in given if name not in own]
    if foreign:
        flags = ", ".join(_flag(name, given[name]) for name in foreign)
        raise UsageError(f"a {args.kind} integration has no {flags}")
    return {"type": args.kind, **given}


def _flag(name: str, value: object) -> str:
    return ("--no-" if value is False else "--") + name.replace("_", "-")


def secret_value(args: argparse.Namespace, name: str) -> str | None:
    """A secret from its option, its `-env` variable, or a prompt (`-`); None if not given."""
    flag = "--" + name.replace("_", "-")
    given, env_name = getattr(args, name), getattr(args, f"{name}_env")
    if given is not None and env_name is not None:
        raise UsageError(f"give {flag} or {flag}-env, not both")
    if env_name is not None:
        if env_name not in os.environ:
            raise UsageError(f"{flag}-env: the environment has no variable {env_name}")
        return os.environ[env_name]
    if given == PROMPT:
        return _prompt(f"{name}: ")
    return given


def _prompt(label: str) -> str:
    if sys.stdin.isatty():
        return getpass.getpass(label)
    return sys.stdin.readline().rstrip("\r\n")  # piped in: `... --token - < file`


async def _add(bus: Bus, request: IntegrationPut) -> int:
    done = await bus.request(subjects.INTEGRATIONS_CONFIG_PUT, request, Done)
    kind = request.integration.__struct_config__.tag
    if done.secret:
        print(done.secret)
        print(
            "the webhook's signing secret (Standard Webhooks) is shown this once: give it to "
            "the receiver's verifier now.",
            file=sys.stderr,
        )
    print(f"{kind} integration of tenant {request.tenant} stored", file=sys.stderr)
    return EXIT_OK


async def _list(bus: Bus, request: IntegrationListRequest) -> int:
    listed = await bus.request(subjects.INTEGRATIONS_CONFIG_LIST, request, IntegrationListResponse)
    if not listed.integrations:
        print("no integrations", file=sys.stderr)
        return EXIT_OK
    print("\n".join(table(LIST_COLUMNS, [_row(info) for info in listed.integrations])))
    return EXIT_OK


def _row(info: IntegrationInfo) -> tuple[str, ...]:
    fields = msgspec.to_builtins(info.integration)
    fields.pop("type", None)
    settings = " ".join(f"{name}={value}" for name, value in sorted(fields.items()))
    updated = time.strftime("%Y-%m-%d %H:%M", time.localtime(info.updated_at))
    return (info.tenant, info.kind, settings or "-", updated)


async def _remove(bus: Bus, request: IntegrationRef) -> int:
    await bus.request(subjects.INTEGRATIONS_CONFIG_REMOVE, request, Done)
    print(f"{request.kind} integration of tenant {request.tenant} removed")
    return EXIT_OK


# -- CI policy ---------------------------------------------------------------------------


def _policy_changes(args: argparse.Namespace) -> dict:
    if args.repo and args.any_repo:
        raise UsageError("give --repo or --any-repo, not both")
    if args.branch and args.any_branch:
        raise UsageError("give --branch or --any-branch, not both")
    if args.notify and args.no_notify:
        raise UsageError("give --notify or --no-notify, not both")
    changes: dict = {}
    if args.agent is not None:
        changes["agent"] = args.agent
    if args.repo or args.any_repo:
        changes["repositories"] = args.repo or []
    if args.branch or args.any_branch:
        changes["branches"] = args.branch or []
    if args.window is not None:
        changes["window_s"] = window_s(args.window)
    if args.notify or args.no_notify:
        changes["notify"] = list(dict.fromkeys(args.notify or []))
    if args.enable or args.disable:
        changes["enabled"] = bool(args.enable)
    if not changes:
        raise UsageError("nothing to set: give --agent, --repo, --branch, --window, --notify...")
    return changes


def _changed(policy: CiPolicy, changes: dict) -> CiPolicy:
    """The policy with `changes`, checked against the contract (agent name, window bounds)."""
    merged = {**msgspec.to_builtins(policy), **changes}
    return decode(msgspec.json.encode(merged), CiPolicy)


def window_s(text: str) -> float:
    found = _WINDOW.match(text.strip())
    if found is None:
        raise UsageError(f"cannot read {text!r} as a window: use 1h, 30m, 90s or 0")
    return float(found.group(1)) * _UNIT_S[found.group(2)]


def policy_lines(policy: CiPolicy) -> list[str]:
    return [
        f"enabled       {'yes' if policy.enabled else 'no'}",
        f"agent         {policy.agent}",
        f"repositories  {' '.join(policy.repositories) or '(any)'}",
        f"branches      {' '.join(policy.branches) or '(any)'}",
        f"window        {_duration(policy.window_s)}",
        f"notify        {' '.join(policy.notify) or '(nowhere)'}",
    ]


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"
