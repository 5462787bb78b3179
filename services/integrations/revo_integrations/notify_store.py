"""What each notification already did at its destination (Postgres, schema_notify.sql).

The record is written before a delivery is acknowledged: `begin` counts the attempt (an
attempt that began may have reached the destination even if the service died before it
heard back), `save_posted` keeps each thing a destination made (a check run id, a comment
id, an issue key) as soon as it exists, and `delivered` / `failed` / `dead` settle it. A
redelivered notification reads it back and updates, or skips, instead of posting again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import asyncpg
import msgspec

from revo_contracts.notify import Notification
from revo_core.group_commit import GroupCommit


@dataclass
class DeliveryRecord:
    state: str  # pending, delivered, dead
    # Attempts begun before this one: > 0 means an earlier one may have reached the
    # destination, so a channel looks for what it made before posting anew.
    earlier_attempts: int
    failures: int
    posted: dict[str, Any] = field(default_factory=dict)


class NotifyStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self._begins = GroupCommit(self._begin_many, "notify-begin")
        self._delivereds = GroupCommit(self._delivered_many, "notify-delivered")

    def start(self) -> None:
        """Concurrent deliveries share round trips: their `begin`s go in one statement, and
        so do their `delivered`s (each caller still waits for its own row)."""
        self._begins.start()
        self._delivereds.start()

    async def stop(self) -> None:
        await self._begins.stop()
        await self._delivereds.stop()

    async def begin(self, note: Notification) -> DeliveryRecord:
        """Count one more attempt of the notification and return its record (as it was)."""
        return await self._begins.submit(note)

    async def _begin_many(self, notes: list[Notification]) -> list[DeliveryRecord]:
        # One row may be in a statement once: a second delivery of the same notification
        # in the batch (a redelivery racing the first) goes in the next statement.
        first, again, seen = [], [], set()
        for note in notes:
            (again if _key(note) in seen else first).append(note)
            seen.add(_key(note))
        rows = await self.pool.fetch(
            """INSERT INTO integrations.notify_deliveries AS d
                   (tenant, channel, notification_id, attempts)
               SELECT t, c, n, 1 FROM unnest($1::text[], $2::text[], $3::text[]) AS u(t, c, n)
               ON CONFLICT (tenant, channel, notification_id) DO UPDATE
               SET attempts = CASE WHEN d.state = 'pending' THEN d.attempts + 1
                                   ELSE d.attempts END,
                   updated_at = now()
               RETURNING tenant, channel, notification_id, state, attempts, failures,
                         posted::text AS posted""",
            [n.tenant for n in first],
            [n.channel for n in first],
            [n.notification_id for n in first],
        )
        records = {(r["tenant"], r["channel"], r["notification_id"]): _record(r) for r in rows}
        later = {}
        if again:
            later = dict(zip(map(_key, again), await self._begin_many(again), strict=True))
        results = []
        for note in notes:  # the first occurrence of a key gets the first record
            key = _key(note)
            results.append(records.pop(key) if key in records else later[key])
        return results

    async def save_posted(self, note: Notification, **posted: Any) -> None:
        await self.pool.execute(
            """UPDATE integrations.notify_deliveries SET posted = posted || $4::jsonb,
               updated_at = now()
               WHERE tenant = $1 AND channel = $2 AND notification_id = $3""",
            note.tenant,
            note.channel,
            note.notification_id,
            msgspec.json.encode(posted).decode(),
        )

    async def delivered(self, note: Notification) -> None:
        await self._delivereds.submit(note)

    async def _delivered_many(self, notes: list[Notification]) -> list[None]:
        await self.pool.execute(
            """UPDATE integrations.notify_deliveries AS d
               SET state = 'delivered', last_error = '', updated_at = now()
               FROM unnest($1::text[], $2::text[], $3::text[]) AS u(t, c, n)
               WHERE d.tenant = u.t AND d.channel = u.c AND d.notification_id = u.n""",
            [n.tenant for n in notes],
            [n.channel for n in notes],
            [n.notification_id for n in notes],
        )
        return [None] * len(notes)

    async def dead(self, note: Notification, error: str) -> None:
        await self._settle(note, "dead", error)

    async def failed(self, note: Notification, error: str) -> int:
        """Count a failed attempt; returns the failures so far."""
        return await self.pool.fetchval(
            """UPDATE integrations.notify_deliveries
               SET failures = failures + 1, last_error = $4, updated_at = now()
               WHERE tenant = $1 AND channel = $2 AND notification_id = $3
               RETURNING failures""",
            note.tenant,
            note.channel,
            note.notification_id,
            error[:2048],
        )

    async def revive(self, note: Notification) -> None:
        """A redriven dead letter starts again with no failures (what it posted stays)."""
        await self.pool.execute(
            """UPDATE integrations.notify_deliveries
               SET state = 'pending', failures = 0, updated_at = now()
               WHERE tenant = $1 AND channel = $2 AND notification_id = $3""",
            note.tenant,
            note.channel,
            note.notification_id,
        )

    async def _settle(self, note: Notification, state: str, error: str) -> None:
        await self.pool.execute(
            """UPDATE integrations.notify_deliveries
               SET state = $4, last_error = $5, updated_at = now()
               WHERE tenant = $1 AND channel = $2 AND notification_id = $3""",
            note.tenant,
            note.channel,
            note.notification_id,
            state,
            error[:2048],
        )

    # -- threads: a failure signature's post at one destination --

    async def thread(
        self, tenant: str, channel: str, destination: str, signature: str
    ) -> str | None:
        return await self.pool.fetchval(
            """SELECT ref FROM integrations.notify_threads
               WHERE tenant = $1 AND channel = $2 AND destination = $3 AND signature = $4""",
            tenant,
            channel,
            destination,
            signature,
        )

    async def keep_thread(
        self, tenant: str, channel: str, destination: str, signature: str, ref: str
    ) -> None:
        await self.pool.execute(
            """INSERT INTO integrations.notify_threads
                   (tenant, channel, destination, signature, ref)
               VALUES ($1, $2, $3, $4, $5)
               ON CONFLICT (tenant, channel, destination, signature) DO UPDATE
               SET ref = EXCLUDED.ref, updated_at = now()""",
            tenant,
            channel,
            destination,
            signature,
            ref,
        )


def _key(note: Notification) -> tuple[str, str, str]:
    return (note.tenant, note.channel, note.notification_id)


def _record(row: asyncpg.Record) -> DeliveryRecord:
    state = row["state"]
    return DeliveryRecord(
        state=state,
        # The attempts counter did not move for a settled notification.
        earlier_attempts=row["attempts"] - 1 if state == "pending" else row["attempts"],
        failures=row["failures"],
        posted=msgspec.json.decode(row["posted"]),
    )
