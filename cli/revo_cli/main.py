"""`revo`: up, down, status, ask."""

from __future__ import annotations

import argparse
import asyncio
import sys

from revo_cli.state import nats_url
from revo_core.logging import configure_logging


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="revo", description="revo: self-hosted AI engineering")
    root.add_argument("--nats-url", help="NATS to talk to (default: NATS_URL or `revo up`'s)")
    commands = root.add_subparsers(dest="command", required=True)
    commands.add_parser("up", help="start NATS, Postgres and every service on this machine")
    commands.add_parser("down", help="stop what `revo up` started")
    commands.add_parser("status", help="list the services answering on NATS")
    ask = commands.add_parser("ask", help="stream an answer from the model")
    ask.add_argument("question")
    ask.add_argument("--model", default="auto")
    ask.add_argument("--max-tokens", type=int, default=512)
    ask.add_argument("--tenant", default="default")
    ask.add_argument("--system", help="a system prompt")
    ask.add_argument("--timeout", type=float, default=300.0)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
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
    from revo_cli.ask import ask, build_request

    request = build_request(args.question, args.model, args.max_tokens, args.tenant, args.system)
    return asyncio.run(ask(nats_url(args.nats_url), request, args.timeout))


if __name__ == "__main__":
    sys.exit(main())
