"""`revo logs NAME [-f]`: a supervised process's log files under .revo/, through `tail`
(which follows a file across the restarts that recreate it, with -F)."""

from __future__ import annotations

import argparse
import os
import sys

from revo_cli.state import state_dir

EXIT_USAGE = 2


def add_logs_parser(commands: argparse._SubParsersAction) -> None:
    logs = commands.add_parser("logs", help="show a service's log (-f follows it)")
    logs.add_argument("service", help="nats-server, postgres, a service, or supervisor")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    logs.add_argument("-n", "--lines", type=int, default=100, help="lines to show (default 100)")


def logs_command(args: argparse.Namespace) -> int:
    from revo_cli.platform import log_files

    files = log_files(state_dir())
    if args.service not in files:
        names = ", ".join(files)
        print(f"error: no service '{args.service}'; one of: {names}", file=sys.stderr)
        return EXIT_USAGE
    existing = [str(path) for path in files[args.service] if path.exists()]
    if not existing and not args.follow:
        print(f"no log for {args.service} yet ({files[args.service][0]})", file=sys.stderr)
        return 1
    follow = ["-F"] if args.follow else []
    # Following, tail waits for a file that is not there yet; otherwise only what exists.
    paths = [str(path) for path in files[args.service]] if args.follow else existing
    sys.stdout.flush()
    os.execvp("tail", ["tail", "-n", str(args.lines), *follow, *paths])
