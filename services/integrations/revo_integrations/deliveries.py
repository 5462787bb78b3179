"""Accepted webhook deliveries, kept in Postgres until their CiEvent is on CI_EVENTS.

Why a table and not only the stream's Nats-Msg-Id: a provider gives up after 10 s (GitHub)
but a failed job's log can take longer to fetch, and GitHub does not redeliver on its own.
So a delivery is written here (the dedupe by delivery id, and the work still to do) before
the webhook is answered; the answer never waits for a log. Whoever holds a `pending` row's
lease (the replica that received it, renewing while it works) fetches the logs, stores them
in CI_LOGS and publishes the event; a replica that dies leaves its lease to lapse, and the
sweep of any replica (or of the same one restarted) completes the row. Publishing twice
after such a takeover is harmless: the event id is the Nats-Msg-Id within CI_EVENTS'
24 h duplicate window, far longer than a lease.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Literal

import aiohttp
import asyncpg
import msgspec
from nats.errors import Error as NatsError
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from revo_contracts import subjects
from revo_contracts.ci import CiEvent, CiLog
from revo_contracts.integrations import GithubIntegration, GitlabIntegration
from revo_core.bus import Bus
from revo_core.ci_logs import store_log
from revo_core.db import DATABASE_AWAY
from revo_core.logging import get_logger
from revo_core.tracing import extract
from revo_integrations.config_store import ConfigStore
from revo_integrations.log_fetch import FetchedLog, LogFetcher, LogFetchError
from revo_integrations.metrics import HOOK_DELIVERIES
from revo_integrations.settings import IntegrationsSettings

log = get_logger("revo.integrations.deliveries")
_tracer = trace.get_tracer("revo.integrations.deliveries")
PUBLISH_TIMEOUT_S = 5.0
# Rows claimed by one sweep at most; the next sweep takes the rest.
_SWEEP_BATCH = 50
# Logs fetched at once by one replica: each may hold up to MAX_LOG_BYTES (25 MB) in memory.
_CONCURRENT_FETCHES = 8


class LogSource(msgspec.Struct, kw_only=True, frozen=True):
    """A log to fetch: a GitHub job, the failed jobs of a GitHub run, or a GitLab job."""

    kind: Literal["github_job", "github_run", "gitlab_job"]
    # GitHub "owner/name", or GitLab's numeric project id.
    repo: str
    id: str
    name: str = ""


class PendingDelivery(msgspec.Struct, kw_only=True):
    event: CiEvent
    logs: list[LogSource] = []
    # The webhook's trace context: the completion, even after a restart, continues it.
    trace: dict[str, str] = {}


DeliveryKey = tuple[str, str, str]  # provider, tenant, delivery id
_work = msgspec.json.Decoder(PendingDelivery)


class DeliveryStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self._records = _BatchedRecords(self)

    async def record(self, key: DeliveryKey, work: PendingDelivery, lease_s: float) -> bool:
        """Keep an accepted delivery, leased to the caller; False when it was seen before."""
        return await self._records.record(key, work, lease_s)

    async def record_many(
        self, rows: list[tuple[DeliveryKey, str, bytes]], lease_s: float
    ) -> set[DeliveryKey]:
        """Insert (key, event id, work) rows in one statement; the keys that were new."""
        columns = list(zip(*((*key, event_id, work) for key, event_id, work in rows), strict=True))
        inserted = await self.pool.fetch(
            """INSERT INTO integrations.hook_deliveries
                   (provider, tenant, delivery_id, event_id, work, lease_until)
               SELECT provider, tenant, delivery_id, event_id, work,
                      now() + make_interval(secs => $6)
               FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bytea[])
                    AS new(provider, tenant, delivery_id, event_id, work)
               ON CONFLICT DO NOTHING
               RETURNING provider, tenant, delivery_id""",
            *(list(column) for column in columns),
            lease_s,
        )
        return {(row["provider"], row["tenant"], row["delivery_id"]) for row in inserted}

    async def published(self, key: DeliveryKey, error: str = "") -> None:
        await self.pool.execute(
            """UPDATE integrations.hook_deliveries
               SET state = 'published', published_at = now(), last_error = $4
               WHERE provider = $1 AND tenant = $2 AND delivery_id = $3""",
            *key,
            error,
        )

    async def published_many(self, keys: list[DeliveryKey]) -> None:
        providers, tenants, ids = (list(column) for column in zip(*keys, strict=True))
        await self.pool.execute(
            """UPDATE integrations.hook_deliveries AS d
               SET state = 'published', published_at = now()
               FROM unnest($1::text[], $2::text[], $3::text[]) AS done(provider, tenant, id)
               WHERE d.provider = done.provider AND d.tenant = done.tenant
                 AND d.delivery_id = done.id""",
            providers,
            tenants,
            ids,
        )

    async def release(self, keys: list[DeliveryKey]) -> None:
        """Give up the leases of pending rows this replica stops working on."""
        providers, tenants, ids = (list(column) for column in zip(*keys, strict=True))
        await self.pool.execute(
            """UPDATE integrations.hook_deliveries AS d SET lease_until = now()
               FROM unnest($1::text[], $2::text[], $3::text[]) AS gone(provider, tenant, id)
               WHERE d.provider = gone.provider AND d.tenant = gone.tenant
                 AND d.delivery_id = gone.id AND d.state = 'pending'""",
            providers,
            tenants,
            ids,
        )

    async def attempt(self, key: DeliveryKey, lease_s: float, error: str = "") -> None:
        """One more attempt is under way (or failed with `error`): the lease runs again."""
        await self.pool.execute(
            """UPDATE integrations.hook_deliveries
               SET attempts = attempts + 1, last_error = $5,
                   lease_until = now() + make_interval(secs => $4)
               WHERE provider = $1 AND tenant = $2 AND delivery_id = $3""",
            *key,
            lease_s,
            error,
        )

    async def claim_lapsed(
        self, lease_s: float, limit: int = _SWEEP_BATCH
    ) -> list[tuple[DeliveryKey, PendingDelivery]]:
        """Pending rows whose holder let the lease lapse, now leased to the caller."""
        rows = await self.pool.fetch(
            """UPDATE integrations.hook_deliveries AS d
               SET lease_until = now() + make_interval(secs => $1)
               FROM (SELECT provider, tenant, delivery_id FROM integrations.hook_deliveries
                     WHERE state = 'pending' AND lease_until < now()
                     ORDER BY lease_until LIMIT $2 FOR UPDATE SKIP LOCKED) AS lapsed
               WHERE d.provider = lapsed.provider AND d.tenant = lapsed.tenant
                 AND d.delivery_id = lapsed.delivery_id
               RETURNING d.provider, d.tenant, d.delivery_id, d.work""",
            lease_s,
            limit,
        )
        return [
            ((row["provider"], row["tenant"], row["delivery_id"]), _work.decode(row["work"]))
            for row in rows
        ]

    async def prune(self, keep_days: float) -> int:
        """Forget published deliveries older than `keep_days`: a redelivery after that is new."""
        status = await self.pool.execute(
            """DELETE FROM integrations.hook_deliveries
               WHERE state = 'published'
                 AND received_at < now() - make_interval(secs => $1)""",
            keep_days * 86400,
        )
        return int(status.split()[-1])


class _BatchedRecords:
    """Group commit: the deliveries that arrive while one INSERT is in flight go into the
    next one together. One statement and one WAL flush for many webhooks under load (the
    measured cost of one each was most of Postgres' CPU per webhook); no wait when idle."""

    MAX_BATCH = 500

    def __init__(self, store: DeliveryStore) -> None:
        self.store = store
        self.queue: list[tuple[DeliveryKey, PendingDelivery, asyncio.Future[bool]]] = []
        self.flushing: asyncio.Task[None] | None = None

    async def record(self, key: DeliveryKey, work: PendingDelivery, lease_s: float) -> bool:
        new: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.queue.append((key, work, new))
        if self.flushing is None:
            self.flushing = asyncio.create_task(self._flush(lease_s), name="delivery records")
        return await new

    async def _flush(self, lease_s: float) -> None:
        try:
            await asyncio.sleep(0)  # the requests already read join this first batch
            while self.queue:
                batch, self.queue = self.queue[: self.MAX_BATCH], self.queue[self.MAX_BATCH :]
                await self._insert(batch, lease_s)
        finally:
            self.flushing = None

    async def _insert(
        self, batch: list[tuple[DeliveryKey, PendingDelivery, asyncio.Future[bool]]], lease_s: float
    ) -> None:
        rows: dict[DeliveryKey, tuple[DeliveryKey, str, bytes]] = {}
        for key, work, _ in batch:  # the same delivery twice in one batch: the first wins
            rows.setdefault(key, (key, work.event.event_id, msgspec.json.encode(work)))
        try:
            inserted = await self.store.record_many(list(rows.values()), lease_s)
        except Exception as exc:
            for _, _, new in batch:
                if not new.done():
                    new.set_exception(exc)
            return
        for key, _, new in batch:
            if not new.done():
                new.set_result(key in inserted)
                inserted.discard(key)


class PublishedMarks:
    """Marks the fast path's deliveries published, many in one UPDATE every MARK_EVERY_S:
    a round trip to Postgres less per webhook. A mark lost with the process is harmless:
    the row's lease lapses, a sweep publishes the event again, and CI_EVENTS drops it as a
    duplicate (its Nats-Msg-Id is the event id)."""

    MARK_EVERY_S = 0.02

    def __init__(self, store: DeliveryStore) -> None:
        self.store = store
        self.pending: list[DeliveryKey] = []
        self.flushing: asyncio.Task[None] | None = None

    def add(self, key: DeliveryKey) -> None:
        self.pending.append(key)
        if self.flushing is None:
            self.flushing = asyncio.create_task(self._flush(), name="published marks")

    async def _flush(self) -> None:
        try:
            await asyncio.sleep(self.MARK_EVERY_S)
            while self.pending:
                batch, self.pending = self.pending, []
                await self.store.published_many(batch)
        except DATABASE_AWAY as exc:
            log.warning("published marks not written; sweeps redo them", error=repr(exc))
            self.pending.clear()
        finally:
            self.flushing = None

    async def close(self) -> None:
        if self.flushing is not None:
            await self.flushing


class DeliveryWorker:
    """Completes pending deliveries: logs fetched and stored, the event published."""

    def __init__(
        self,
        bus: Bus,
        store: DeliveryStore,
        configs: ConfigStore,
        fetcher: LogFetcher,
        settings: IntegrationsSettings,
    ) -> None:
        self.bus = bus
        self.store = store
        self.configs = configs
        self.fetcher = fetcher
        self.settings = settings
        self.running: dict[DeliveryKey, asyncio.Task[None]] = {}
        self.marks = PublishedMarks(store)
        self.fetching = asyncio.Semaphore(_CONCURRENT_FETCHES)

    async def publish_now(self, key: DeliveryKey, event: CiEvent) -> None:
        """The fast path of an event without a log to fetch: published and acked; marked
        published right after, in a batch."""
        # No publish span: the webhook's server span, a moment older, says the same.
        await publish(self.bus, event, span=False)
        self.marks.add(key)

    def start(self, key: DeliveryKey, work: PendingDelivery) -> None:
        if key in self.running:
            return
        task = asyncio.create_task(self._complete(key, work), name=f"delivery {key}")
        self.running[key] = task
        task.add_done_callback(lambda _: self.running.pop(key, None))

    async def sweep_forever(self) -> None:
        """Take over lapsed rows (a dead replica's, or this process's before a restart)."""
        sweeps = 0
        while True:
            try:
                for key, work in await self.store.claim_lapsed(self.settings.hooks_lease_s):
                    if key in self.running:
                        continue
                    log.info("completing a pending delivery", provider=key[0], tenant=key[1])
                    HOOK_DELIVERIES.labels(key[0], "taken_over").inc()
                    self.start(key, work)
                if sweeps % 720 == 0:
                    await self.store.prune(self.settings.hooks_keep_days)
            except DATABASE_AWAY as exc:
                log.warning("delivery sweep: database unavailable", error=type(exc).__name__)
            sweeps += 1
            await asyncio.sleep(self.settings.hooks_sweep_s)

    async def close(self) -> None:
        """Stop working; what is pending stays in Postgres, its lease given up so that the
        next replica (or this one restarted) takes it at its first sweep."""
        keys, tasks = list(self.running), list(self.running.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.marks.close()
        if keys:
            with contextlib.suppress(*DATABASE_AWAY):
                await self.store.release(keys)

    async def _complete(self, key: DeliveryKey, work: PendingDelivery) -> None:
        event = work.event
        with _tracer.start_as_current_span(
            "ci delivery complete",
            context=extract(work.trace),
            kind=SpanKind.INTERNAL,
            attributes={"revo.tenant": event.tenant, "revo.ci.event_id": event.event_id},
        ):
            try:
                error = ""
                if work.logs and event.log is None:
                    async with self.fetching:
                        event.log, error = await self._logs(key, event, work.logs)
                await self._publish_until_acked(key, event)
                await self.store.published(key, error)
                HOOK_DELIVERIES.labels(key[0], "without_log" if error else "published").inc()
            except asyncio.CancelledError:
                raise
            except Exception:
                # The row stays pending: its lease lapses and a sweep tries again.
                log.exception("completing a delivery failed", provider=key[0], tenant=key[1])

    async def _logs(
        self, key: DeliveryKey, event: CiEvent, sources: list[LogSource]
    ) -> tuple[CiLog | None, str]:
        """The event's log, tried with backoff; (None, why) once retrying cannot help."""
        error = ""
        for attempt in range(self.settings.log_fetch_attempts):
            await self.store.attempt(key, self.settings.hooks_lease_s, error)
            try:
                return await self._fetch(event, sources), ""
            except LogFetchError as exc:
                error = str(exc)[:2000]
                if exc.permanent:
                    break
            log.warning("log fetch failed", tenant=event.tenant, attempt=attempt + 1, error=error)
            await asyncio.sleep(self.settings.log_fetch_backoff_s * 2**attempt)
        log.warning("event goes out without its log", tenant=event.tenant, error=error)
        return None, error or "no log"

    async def _fetch(self, event: CiEvent, sources: list[LogSource]) -> CiLog | None:
        integration = await self.configs.get(event.tenant, event.provider)
        if not isinstance(integration, GithubIntegration | GitlabIntegration):
            raise LogFetchError(f"tenant has no {event.provider} integration", permanent=True)
        parts: list[tuple[str, FetchedLog]] = []
        for source in sources:
            parts += await self._fetch_source(integration, event, source)
        if not parts:
            return None
        stored = await store_log(self.bus.js, event.tenant, event.event_id, _joined(parts))
        stored.truncated = stored.truncated or any(part.truncated for _, part in parts)
        return stored

    async def _fetch_source(
        self, integration: GithubIntegration | GitlabIntegration, event: CiEvent, source: LogSource
    ) -> list[tuple[str, FetchedLog]]:
        api, token = integration.api_url, integration.token
        try:
            if source.kind == "gitlab_job":
                trace = await self.fetcher.gitlab_job_trace(api, token, source.repo, source.id)
                return [(source.name, trace)]
            if source.kind == "github_job":
                job_log = await self.fetcher.github_job_log(api, token, source.repo, source.id)
                return [(source.name, job_log)]
            jobs = await self.fetcher.github_failed_jobs(api, token, source.repo, source.id)
            _name_jobs(event, jobs)
            return [
                (job.name, await self.fetcher.github_job_log(api, token, source.repo, str(job.id)))
                for job in jobs
            ]
        except (aiohttp.ClientError, TimeoutError, OSError, msgspec.DecodeError) as exc:
            # A read cut short, a stalled body, an answer that is not the API's JSON.
            raise LogFetchError(f"{source.kind} {source.id}: {type(exc).__name__} {exc}") from exc

    async def _publish_until_acked(self, key: DeliveryKey, event: CiEvent) -> None:
        delay = 0.5
        while True:
            try:
                await publish(self.bus, event)
                return
            except (NatsError, TimeoutError) as exc:
                log.warning("ci event publish not acked; retrying", error=type(exc).__name__)
                await self.store.attempt(key, self.settings.hooks_lease_s, f"publish: {exc}")
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)


async def publish(bus: Bus, event: CiEvent, span: bool = True) -> None:
    """On CI_EVENTS, deduped by the event id; waits for the stream's ack. Without `span`,
    the current span's context (the webhook's) is what the consumers continue."""
    subject = subjects.ci_events(event.tenant, event.provider)
    await bus.js_publish(
        subject, event, msg_id=event.event_id, timeout=PUBLISH_TIMEOUT_S, span=span
    )


def _name_jobs(event: CiEvent, jobs: list) -> None:
    """A run's event names its failed jobs (one: exactly as that job's own event would)."""
    if not jobs:
        return
    event.job = ", ".join(job.name for job in jobs)[:512]
    event.job_id = ",".join(str(job.id) for job in jobs)[:512]
    if len(jobs) == 1 and jobs[0].html_url:
        event.job_url = jobs[0].html_url[:2048]


def _joined(parts: list[tuple[str, FetchedLog]]) -> bytes:
    """One job's log as it is; several, each under a header naming its job."""
    if len(parts) == 1:
        return parts[0][1].data
    return b"".join(
        f"===== job {name} =====\n".encode() + part.data + b"\n" for name, part in parts
    )
