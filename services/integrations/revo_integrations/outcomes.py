"""Announcing what a CI investigation found: when a run the CI trigger started ends, one
Notification per channel of the tenant's CI policy goes to NOTIFY.

The runs to announce are rows in Postgres (written when the run is submitted), so a
restarted service still announces the runs its predecessor started. A run's last event is
read from its replayable log (RUN_EVENTS, last message on the run's subject); it carries
the runner's trace context, so the notification continues the run's trace. Each
notification's id is `<run id>.<channel>`: NOTIFY's Nats-Msg-Id, so announcing twice (two
replicas, a crash between publish and the row's update) still delivers once.
"""

from __future__ import annotations

import time

import asyncpg
import msgspec
from nats.js.errors import NotFoundError

from revo_contracts import subjects
from revo_contracts.ci import CiEvent
from revo_contracts.notify import Link, Notification
from revo_contracts.runs import RunCancelled, RunEvent, RunFailed, RunFinished
from revo_contracts.streams import RUN_EVENTS
from revo_core import tracing
from revo_core.bus import Bus
from revo_core.logging import get_logger
from revo_core.periodic import Periodic
from revo_core.runs import is_terminal

log = get_logger("revo.integrations.outcomes")
_event = msgspec.json.Decoder(RunEvent)
_ci_event = msgspec.json.Decoder(CiEvent)
# Pending runs looked at per pass, oldest first.
_BATCH = 200
# A run not ended after this long is announced no more (its row is kept, marked expired).
_GIVE_UP_S = 24 * 3600


class OutcomeAnnouncer:
    def __init__(self, bus: Bus, pool: asyncpg.Pool, every_s: float = 1.0) -> None:
        self.bus = bus
        self.pool = pool
        self._passes = Periodic("announce-run-outcomes", every_s, self.announce_ended)

    async def watch(self, run_id: str, event: CiEvent, channels: list[str]) -> None:
        """Announce this run's outcome on `channels` once it ends (idempotent)."""
        if not channels:
            return
        await self.pool.execute(
            """INSERT INTO integrations.announcements (run_id, tenant, channels, event)
               VALUES ($1, $2, $3, $4::jsonb) ON CONFLICT (run_id) DO NOTHING""",
            run_id,
            event.tenant,
            channels,
            msgspec.json.encode(event).decode(),
        )

    def start(self) -> OutcomeAnnouncer:
        self._passes.start()  # a pass that fails (Postgres or NATS away) leaves rows pending
        return self

    async def stop(self) -> None:
        await self._passes.stop()

    async def announce_ended(self) -> int:
        """One pass over the pending runs; returns how many were announced."""
        rows = await self.pool.fetch(
            """SELECT run_id, tenant, channels, event::text AS event, created_at
               FROM integrations.announcements WHERE state = 'pending'
               ORDER BY created_at LIMIT $1""",
            _BATCH,
        )
        announced = 0
        for row in rows:
            announced += await self._announce_if_ended(row)
        return announced

    async def _announce_if_ended(self, row: asyncpg.Record) -> int:
        subject = subjects.runs_events(row["tenant"], row["run_id"])
        try:
            last = await self.bus.js.get_last_msg(RUN_EVENTS.name, subject)
        except NotFoundError:
            return await self._expire_if_old(row)
        event = _event.decode(last.data or b"")
        if not is_terminal(event):
            return await self._expire_if_old(row)
        with tracing.process_span(subject, last.headers):
            ci_event = _ci_event.decode(row["event"])
            for channel in row["channels"]:
                await self._publish(notification_of(ci_event, event, channel))
        await self._mark(row["run_id"], "announced")
        log.info("run outcome announced", run_id=row["run_id"], channels=list(row["channels"]))
        return 1

    async def _publish(self, notification: Notification) -> None:
        await self.bus.js_publish(
            subjects.notify(notification.channel, notification.tenant),
            notification,
            msg_id=notification.notification_id,
        )

    async def _expire_if_old(self, row: asyncpg.Record) -> int:
        if time.time() - row["created_at"].timestamp() > _GIVE_UP_S:
            await self._mark(row["run_id"], "expired")
            log.warning("run never ended: not announced", run_id=row["run_id"])
        return 0

    async def _mark(self, run_id: str, state: str) -> None:
        await self.pool.execute(
            "UPDATE integrations.announcements SET state = $2, updated_at = now() "
            "WHERE run_id = $1",
            run_id,
            state,
        )


def notification_of(ci: CiEvent, ended: RunEvent, channel: str) -> Notification:
    """What the team is told: the failure, and what the investigation made of it."""
    where = " / ".join(part for part in (ci.workflow, ci.job) if part) or ci.provider
    repository = ci.repository.full_name or ci.repository.url or "a repository"
    sha = f" at {ci.commit_sha[:7]}" if ci.commit_sha else ""
    return Notification(
        notification_id=f"{ended.run_id}.{channel}",
        tenant=ci.tenant,
        channel=channel,  # type: ignore[arg-type]
        title=f"CI {ci.status}: {repository} {where}{sha}"[:256],
        summary=_summary_of(ended)[: 32 * 1024],
        severity="failure" if isinstance(ended, RunFinished) else "warning",
        signature=ci.failure_signature()[:512],
        repository=ci.repository,
        commit_sha=ci.commit_sha,
        pr_number=ci.pr_number,
        root_cause=(ended.answer if isinstance(ended, RunFinished) else "")[: 8 * 1024],
        links=_links_of(ci),
        run_id=ended.run_id,
        created_at=time.time(),
    )


def _summary_of(ended: RunEvent) -> str:
    if isinstance(ended, RunFinished):
        return ended.answer
    if isinstance(ended, RunFailed):
        return f"The investigation failed ({ended.code}): {ended.reason}"
    if isinstance(ended, RunCancelled):
        return f"The investigation was cancelled. {ended.reason}".strip()
    return ""


def _links_of(ci: CiEvent) -> list[Link]:
    links = []
    if ci.job_url:
        links.append(Link(title="failed job", url=ci.job_url))
    if ci.url and ci.url != ci.job_url:
        links.append(Link(title="pipeline", url=ci.url))
    return links
