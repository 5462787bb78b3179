"""`revo status`: which services answer on NATS, from the micro `$SRV.PING`/`$SRV.INFO`."""

from __future__ import annotations

import asyncio
import json

from revo_cli.state import nats_creds
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


async def status(nats_url: str) -> int:
    try:
        bus = await Bus.connect(
            nats_url,
            name="revo-cli",
            connect_timeout=1,
            connect_attempts=1,
            credentials=nats_creds(),
        )
    except BusUnavailable as exc:
        print(f"revo is not running: {exc}")
        return 1
    try:
        services = await discover(bus)
    finally:
        await bus.close()
    print(f"NATS {nats_url}: {len(services)} service instance(s)")
    for info in services:
        subjects = ", ".join(e["subject"] for e in info.get("endpoints") or [])
        print(f"  {info['name']:<14} {info['version']:<8} {info['id'][:12]}  {subjects}")
    return 0 if services else 1
