"""`revo status`: every process `revo up` supervises (up, restarting or failed, restarts,
last exit), then which services answer on NATS, from the micro `$SRV.PING`/`$SRV.INFO`."""

from __future__ import annotations

import asyncio
import json
import time

from revo_cli.state import (
    NATS,
    POSTGRES,
    PlatformState,
    ServiceRecord,
    connect_cli,
    load_state,
    pid_alive,
)
from revo_core.bus import Bus
from revo_core.errors import BusUnavailable


async def discover(bus: Bus, window: float = 0.5) -> list[dict]:
    """Every service instance that answers `$SRV.INFO` within `window` seconds."""
    replies: list[dict] = []

    async def keep(msg) -> None:
        replies.append(json.loads(msg.data))

    inbox = bus.nc.new_inbox()
    sub = await bus.nc.subscribe(inbox, cb=keep)
    await bus.nc.publish("$SRV.INFO", b"", reply=inbox)
    await asyncio.sleep(window)
    await sub.unsubscribe()
    return sorted(replies, key=lambda r: (r["name"], r["id"]))


def shown_status(record: ServiceRecord) -> str:
    """What the supervisor recorded, unless the process has died since (and no supervisor
    is left to notice): then `down`."""
    if record.status in ("starting", "running") and not pid_alive(record.pid):
        return "down"
    return record.status


def _uptime(record: ServiceRecord, status: str) -> str:
    if status != "running" or not record.started_at:
        return "-"
    seconds = int(time.time() - record.started_at)
    if seconds < 120:
        return f"{seconds}s"
    return f"{seconds // 60}m" if seconds < 7200 else f"{seconds // 3600}h"


def print_supervised(state: PlatformState) -> bool:
    """The table of supervised processes; True when every one of them is running."""
    if pid_alive(state.supervisor_pid):
        print(f"revo up: supervisor running, pid {state.supervisor_pid}")
    else:
        print("revo up: supervisor not running (`revo up` starts it again)")
    print(
        f"  {'PROCESS':<14} {'STATUS':<11} {'PID':<8} {'PORT':<6} {'RESTARTS':<9} {'UP':<6} "
        "LAST EXIT"
    )
    all_running = pid_alive(state.supervisor_pid)
    ports = {NATS: state.nats_port, POSTGRES: state.postgres_port}
    for name, record in state.processes().items():
        status = shown_status(record)
        all_running = all_running and status == "running"
        pid = str(record.pid) if status in ("starting", "running") else "-"
        port = ports.get(name, record.http_port)
        up = _uptime(record, status)
        print(f"  {name:<14} {status:<11} {pid:<8} {port:<6} {record.restarts:<9} {up:<6} "
              f"{record.last_exit or '-'}")  # fmt: skip
    return all_running


async def status(nats_url: str) -> int:
    state = load_state()
    all_running = print_supervised(state) if state is not None else True
    try:
        bus = await connect_cli(nats_url)
    except BusUnavailable as exc:
        print(f"NATS does not answer: {exc}" if state else f"revo is not running: {exc}")
        return 1
    try:
        services = await discover(bus)
    finally:
        await bus.close()
    print(f"NATS {nats_url}: {len(services)} service instance(s)")
    for info in services:
        subjects = ", ".join(e["subject"] for e in info.get("endpoints") or [])
        print(f"  {info['name']:<14} {info['version']:<8} {info['id'][:12]}  {subjects}")
    return 0 if services and all_running else 1
