"""`revo run` and `revo runs`: submit a run and watch it live; list, show, cancel, answer.

Exit status: 0 done, 1 the run (or the request) failed, 2 bad usage or nothing to talk
to, 130 interrupted with Ctrl-C (the run is cancelled too).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import msgspec
from nats.errors import NoRespondersError
from nats.js.errors import NotFoundError as StreamNotFound

from revo_cli.run_output import JsonPrinter, LivePrinter, describe, detail_lines, runs_table
from revo_cli.state import connect_cli
from revo_contracts.bus_identities import OPERATOR
from revo_contracts.runs import (
    TERMINAL_EVENT_TYPES,
    RunGetRequest,
    RunLimits,
    RunListRequest,
    RunSubmit,
    RunSummary,
    TokenDelta,
    Workspace,
)
from revo_contracts.streams import RUNS
from revo_core.bus import Bus
from revo_core.errors import BusUnavailable, InvalidRequest, NotFound, ServiceError
from revo_core.runs import (
    RunFollower,
    answer_run,
    cancel_run,
    event_type,
    get_run,
    is_terminal,
    list_runs,
    new_run_id,
    submit_run,
)

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
EXIT_BY_END = {"finished": EXIT_OK, "failed": EXIT_FAILED, "cancelled": EXIT_FAILED}
CANCEL_REASON = "cancelled from the CLI"
# After Ctrl-C, how long to wait for the runner to confirm; after `runs cancel`, to end.
INTERRUPT_WAIT_S = 3.0
CANCEL_WAIT_S = 5.0
# A git URL (scheme:// or scp-like user@host:path) is the runner's to fetch, not a path here.
_GIT_URL = re.compile(r"^([a-z][a-z0-9+.-]*://|[\w.-]+@[\w.-]+:)", re.IGNORECASE)

Command = Callable[[Bus], Awaitable[int]]
Printer = LivePrinter | JsonPrinter


def fail(message: str, status: int = EXIT_FAILED) -> int:
    print(message, file=sys.stderr, flush=True)
    return status


# -- entry points (from main) ------------------------------------------------------------


def run_command(args: argparse.Namespace, nats_url: str) -> int:
    try:
        submit = build_submit(args)
    except InvalidRequest as exc:
        return fail(f"error: {exc.message}", EXIT_USAGE)
    printer = JsonPrinter() if args.json else LivePrinter(submit)
    return execute(nats_url, lambda bus: run(bus, submit, printer))


def runs_command(args: argparse.Namespace, nats_url: str) -> int:
    return execute(nats_url, lambda bus: runs_subcommand(bus, args))


def execute(nats_url: str, command: Command) -> int:
    try:
        return asyncio.run(with_bus(nats_url, command))
    except KeyboardInterrupt:  # before a run was submitted: nothing to cancel
        return EXIT_INTERRUPTED


async def with_bus(nats_url: str, command: Command) -> int:
    """Connect, run the command, and turn every expected error into a message and status."""
    try:
        bus = await connect_cli(nats_url)
    except BusUnavailable:
        return fail(f"cannot reach NATS at {nats_url}; is `revo up` running?", EXIT_USAGE)
    try:
        return await command(bus)
    except (BusUnavailable, StreamNotFound, NoRespondersError):
        return fail(no_runner_message(nats_url), EXIT_USAGE)
    except InvalidRequest as exc:
        return fail(f"error: {exc}", EXIT_USAGE)
    except ServiceError as exc:
        return fail(f"error: {exc}")
    finally:
        await bus.close()


def no_runner_message(nats_url: str) -> str:
    return (
        f"no agent-runner answers on NATS at {nats_url} (runs need one); "
        "`revo up` starts it, `revo status` lists what runs"
    )


# -- revo run ------------------------------------------------------------------------------


def build_submit(args: argparse.Namespace) -> RunSubmit:
    submit = RunSubmit(
        run_id=new_run_id(),
        tenant=args.tenant,
        agent=args.agent,
        task=args.task,
        session_id=args.session,
        limits=limits_of(args),
        workspace=workspace_of(args.repo, args.ref),
    )
    return validated(submit)


def limits_of(args: argparse.Namespace) -> RunLimits:
    given = {"max_steps": args.max_steps, "max_tokens": args.max_tokens}
    given["wall_time_s"] = args.wall_time
    return RunLimits(**{name: value for name, value in given.items() if value is not None})


def workspace_of(repo: str | None, ref: str | None) -> Workspace | None:
    if repo is None:
        return None
    # The runner resolves paths on its own machine, from its own working directory.
    location = repo if _GIT_URL.match(repo) else os.path.abspath(os.path.expanduser(repo))
    return Workspace(repo=location, ref=ref)


def validated(submit: RunSubmit) -> RunSubmit:
    """The runner would refuse a malformed run; refuse it here, where the user can fix it."""
    try:
        return msgspec.convert(msgspec.to_builtins(submit), RunSubmit)
    except msgspec.ValidationError as exc:
        raise InvalidRequest(f"invalid run: {exc}") from None


async def run(bus: Bus, submit: RunSubmit, printer: Printer) -> int:
    # No RUNS stream: no agent-runner ever came to this NATS (StreamNotFound, told as such).
    await bus.js.stream_info(RUNS.name)
    follower = RunFollower(bus, submit.tenant, submit.run_id, replay=False)  # before submit
    async with ctrl_c_pressed() as pressed, follower as f:
        await submit_run(bus, submit)
        printer.header(submit.tenant)
        following = asyncio.create_task(play(f, printer))
        if not await first_of(following, pressed):
            return EXIT_BY_END[following.result()]
        await cancel_on_interrupt(bus, submit.run_id)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(following, INTERRUPT_WAIT_S)
        return EXIT_INTERRUPTED


async def play(follower: RunFollower, printer: Printer) -> str:
    """Show every item of the run; return how it ended."""
    ending = ""
    async for item in follower:
        printer.show(item)
        if not isinstance(item, TokenDelta):
            ending = event_type(item)
    return ending


@contextlib.asynccontextmanager
async def ctrl_c_pressed() -> AsyncIterator[asyncio.Event]:
    """Ctrl-C sets an event instead of raising in the middle of whatever runs then."""
    loop = asyncio.get_running_loop()
    pressed = asyncio.Event()
    loop.add_signal_handler(signal.SIGINT, pressed.set)
    try:
        yield pressed
    finally:
        loop.remove_signal_handler(signal.SIGINT)


async def first_of(task: asyncio.Task, pressed: asyncio.Event) -> bool:
    """Wait for the task or for Ctrl-C; True when Ctrl-C came first."""
    waiting = asyncio.create_task(pressed.wait())
    await asyncio.wait({task, waiting}, return_when=asyncio.FIRST_COMPLETED)
    waiting.cancel()
    return pressed.is_set() and not task.done()


async def cancel_on_interrupt(bus: Bus, run_id: str) -> None:
    print(f"\ninterrupted: cancelling {run_id}", file=sys.stderr, flush=True)
    try:
        ack = await cancel_run(bus, run_id, CANCEL_REASON, actor=OPERATOR)
    except BusUnavailable:
        ack = None
    if ack is None:
        print(
            "no runner holds the run yet; it ends as cancelled when one picks it up",
            file=sys.stderr,
            flush=True,
        )


# -- revo runs -----------------------------------------------------------------------------


async def runs_subcommand(bus: Bus, args: argparse.Namespace) -> int:
    match args.runs_command:
        case "show":
            return await show(bus, args.run_id, args.tenant)
        case "cancel":
            return await cancel(bus, args.run_id)
        case "answer":
            return await answer(bus, args.run_id, args.text)
    return await list_command(bus, args)


async def list_command(bus: Bus, args: argparse.Namespace) -> int:
    request = RunListRequest(
        tenant=args.tenant, status=args.status, agent=args.agent, limit=args.limit
    )
    runs = (await list_runs(bus, request)).runs
    if not runs:
        filtered = args.tenant or args.status or args.agent
        print("no runs match" if filtered else "no runs yet")
        return EXIT_OK
    print("\n".join(runs_table(runs, time.time())))
    return EXIT_OK


async def show(bus: Bus, run_id: str, tenant: str | None) -> int:
    try:
        detail = await get_run(bus, RunGetRequest(run_id=run_id, tenant=tenant))
    except NotFound:
        return fail(f"no run {run_id!r} (`revo runs` lists the runs there are)")
    print("\n".join(detail_lines(detail, time.time())))
    return EXIT_OK


async def cancel(bus: Bus, run_id: str) -> int:
    run = await stored_run(bus, run_id)
    if run is not None and run.status in TERMINAL_EVENT_TYPES:
        return fail(f"run {run_id} has already ended ({run.status}); nothing to cancel")
    ack = await cancel_run(bus, run_id, CANCEL_REASON, actor=OPERATOR)
    if ack is None:
        return not_held(run_id, run, "it ends as cancelled once a runner takes it")
    print(f"cancelling {run_id}", flush=True)
    tenant = (run or (await get_run(bus, RunGetRequest(run_id=run_id))).run).tenant
    last = await last_event(bus, tenant, run_id, CANCEL_WAIT_S)
    if last is None:
        print(f"still running after {CANCEL_WAIT_S:.0f} s; `revo runs show {run_id}` tells later")
        return EXIT_OK
    print(describe(last))
    return EXIT_OK if event_type(last) == "cancelled" else EXIT_FAILED


async def answer(bus: Bus, run_id: str, text: str) -> int:
    run = await stored_run(bus, run_id)
    if run is not None and run.status in TERMINAL_EVENT_TYPES:
        return fail(f"run {run_id} has already ended ({run.status}); it asks nothing more")
    ack = await answer_run(bus, run_id, text)
    if ack is None:
        return not_held(run_id, run, "it gets the answer once a runner takes it")
    print(f"run {run_id} took the answer ({ack.status})")
    return EXIT_OK


async def stored_run(bus: Bus, run_id: str) -> RunSummary | None:
    """The run as the runners recorded it; None before a runner has picked it up."""
    try:
        return (await get_run(bus, RunGetRequest(run_id=run_id))).run
    except NotFound:
        return None


def not_held(run_id: str, run: RunSummary | None, what_happens: str) -> int:
    """No runner acknowledged a control message: say why, from what the runners recorded."""
    if run is None:
        return fail(
            f"no runner has picked up a run {run_id!r} yet; if one is queued, {what_happens}"
        )
    print(f"run {run_id} is {run.status} and no runner holds it now; {what_happens}")
    return EXIT_OK


async def last_event(bus: Bus, tenant: str, run_id: str, within: float) -> Any | None:
    """The run's terminal event, if it comes within `within` seconds."""
    async with RunFollower(bus, tenant, run_id, tokens=False) as follower:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                async for event in follower:
                    if is_terminal(event):
                        return event
    return None
