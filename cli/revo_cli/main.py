"""`revo`: up, down, status, logs, ask, run, runs, keys, cost, budget, memory, creds, audit,
publish, integrations, ci-policy, notify."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import typing

from revo_cli.audit import add_audit_parser
from revo_cli.creds import add_creds_parser
from revo_cli.integrations import add_integrations_parsers
from revo_cli.keys import add_keys_parser
from revo_cli.logs import add_logs_parser
from revo_cli.memory import add_memory_parser
from revo_cli.notify import add_notify_parser
from revo_cli.publish import add_publish_parser
from revo_cli.state import nats_url
from revo_contracts.runs import RunStatus
from revo_core.logging import configure_logging

RUN_STATUSES = typing.get_args(RunStatus)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="revo", description="revo: self-hosted AI engineering")
    root.add_argument("--nats-url", help="NATS to talk to (default: NATS_URL or `revo up`'s)")
    root.add_argument(
        "--nats-creds",
        help="NATS credentials, a .creds file (default: NATS_CREDS or `revo up`'s operator)",
    )
    commands = root.add_subparsers(dest="command", required=True)
    commands.add_parser("up", help="start NATS, Postgres and every service on this machine")
    commands.add_parser("down", help="stop what `revo up` started")
    commands.add_parser(
        "status", help="every process `revo up` supervises, and the services answering on NATS"
    )
    add_logs_parser(commands)
    ask = commands.add_parser("ask", help="stream an answer from the model")
    ask.add_argument("question")
    ask.add_argument("--model", default="auto")
    ask.add_argument("--max-tokens", type=int, default=512)
    ask.add_argument("--tenant", default="default")
    ask.add_argument("--system", help="a system prompt")
    ask.add_argument("--timeout", type=float, default=300.0)
    add_run_parser(commands)
    add_runs_parser(commands)
    add_keys_parser(commands)
    add_cost_parsers(commands)
    add_memory_parser(commands)
    add_creds_parser(commands)
    add_audit_parser(commands)
    add_publish_parser(commands)
    add_integrations_parsers(commands)
    add_notify_parser(commands)
    return root


def add_cost_parsers(commands: argparse._SubParsersAction) -> None:
    cost = commands.add_parser("cost", help="spend by day, model and provider; savings; top runs")
    cost.add_argument("--tenant", help="only this tenant (default: all)")
    cost.add_argument(
        "--since", help="7d, 12h, 2026-11-01 or a unix time (default: the last 30 days)"
    )
    cost.add_argument("--until", help="same forms as --since (default: today)")
    cost.add_argument("--top", type=int, default=10, help="top runs by cost to list")
    budget = commands.add_parser("budget", help="show, set or delete a tenant's budget")
    budget.add_argument("--tenant", required=True)
    budget.add_argument("--key", help="an API key id: that key's own budget")
    budget.add_argument("--set", type=float, metavar="USD", help="set the limit, in dollars")
    budget.add_argument("--period", choices=("day", "month"), default="month")
    budget.add_argument("--delete", action="store_true")


def add_run_parser(commands: argparse._SubParsersAction) -> None:
    run = commands.add_parser("run", help="run an agent on a task and watch it live")
    run.add_argument("agent", help="e.g. assistant, code-analyst")
    run.add_argument("task")
    run.add_argument("--repo", help="git repository to work in (a path or a URL)")
    run.add_argument("--ref", help="branch, tag or commit of --repo")
    run.add_argument("--tenant", default="default")
    run.add_argument("--session", help="session id: the run sees earlier turns of it")
    run.add_argument("--max-steps", type=int)
    run.add_argument("--max-tokens", type=int)
    run.add_argument("--wall-time", type=float, metavar="SECONDS")
    run.add_argument("--json", action="store_true", help="one JSON line per event and delta")


def add_runs_parser(commands: argparse._SubParsersAction) -> None:
    runs = commands.add_parser("runs", help="list runs; show, cancel or answer one")
    runs.add_argument("--tenant", help="only this tenant's runs (default: all)")
    runs.add_argument("--status", choices=RUN_STATUSES)
    runs.add_argument("--agent")
    runs.add_argument("--limit", type=int, default=20)
    actions = runs.add_subparsers(dest="runs_command")
    show = actions.add_parser("show", help="a run's summary, event log and answer")
    show.add_argument("run_id")
    show.add_argument("--tenant")
    cancel = actions.add_parser("cancel", help="stop a run")
    cancel.add_argument("run_id")
    answer = actions.add_parser("answer", help="answer the question a run waits on")
    answer.add_argument("run_id")
    answer.add_argument("text")


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.nats_creds:
        os.environ["NATS_CREDS"] = args.nats_creds
    # The terminal is for answers: only warnings from the libraries, and on stderr.
    configure_logging("revo-cli", level="WARNING", json=False, stream=sys.stderr)
    if args.command == "up":
        from revo_cli.platform import up

        return up()
    if args.command == "down":
        from revo_cli.platform import down

        return down()
    if args.command == "status":
        from revo_cli.status import status

        return asyncio.run(status(nats_url(args.nats_url)))
    if args.command == "logs":
        from revo_cli.logs import logs_command

        return logs_command(args)
    if args.command == "run":
        from revo_cli.runs import run_command

        return run_command(args, nats_url(args.nats_url))
    if args.command == "runs":
        from revo_cli.runs import runs_command

        return runs_command(args, nats_url(args.nats_url))
    if args.command == "keys":
        from revo_cli.keys import keys_command

        return keys_command(args, nats_url(args.nats_url))
    if args.command == "cost":
        from revo_cli.cost import cost_command

        return cost_command(args, nats_url(args.nats_url))
    if args.command == "budget":
        from revo_cli.cost import budget_command

        return budget_command(args, nats_url(args.nats_url))
    if args.command == "audit":
        from revo_cli.audit import audit_command

        return audit_command(args, nats_url(args.nats_url))
    if args.command == "notify":
        from revo_cli.notify import notify_command

        return notify_command(args, nats_url(args.nats_url))
    if args.command == "integrations" and args.integrations_command == "test":
        from revo_cli.notify import integrations_test_command

        return integrations_test_command(args, nats_url(args.nats_url))
    if args.command == "integrations":
        from revo_cli.integrations import integrations_command

        return integrations_command(args, nats_url(args.nats_url))
    if args.command == "ci-policy":
        from revo_cli.integrations import ci_policy_command

        return ci_policy_command(args, nats_url(args.nats_url))
    if args.command == "creds":
        from revo_cli.creds import creds_command

        return creds_command(args)
    if args.command == "publish":
        from revo_cli.publish import publish_command

        return publish_command(args)
    if args.command == "memory":
        from revo_cli.memory import memory_command

        return memory_command(args, nats_url(args.nats_url))
    from revo_cli.ask import ask, build_request

    request = build_request(args.question, args.model, args.max_tokens, args.tenant, args.system)
    return asyncio.run(ask(nats_url(args.nats_url), request, args.timeout))


if __name__ == "__main__":
    sys.exit(main())
