"""The CI trigger: a failing CI event starts one run of the tenant's CI agent.

A durable pull consumer `integrations-ci` on stream CI_EVENTS takes every event. One that
fails (FAILED_STATUSES) and passes the tenant's CI policy (ci_policy.verdict) starts a run
of `policy.agent`, unless the same failure (CiEvent.failure_signature) already started one
within `policy.window_s`. Exactly one run per failure and window, with any number of
replicas and redeliveries:

1. claim: an atomic upsert of (tenant, signature) in `integrations.ci_failures` that only
   takes the row when it is free, older than the window, or this very event's (a
   redelivery). The loser of two replicas' races sees another event's claim: deduplicated.
2. the run id is derived from (tenant, signature, event id): a redelivery submits the same
   run id, and the RUNS stream's Nats-Msg-Id drops the second copy;
3. `integrations.ci_runs` records the run once RUNS acked it: a redelivery of an event whose
   run is recorded submits nothing, however late (past RUNS' duplicate window) it comes;
4. the event is acked last. A crash anywhere before leaves it unacked: redelivered after
   `ci_ack_wait_s`, and steps 1-3 make the retry submit the same run at most once.

An event that names another tenant than its subject's tenant token (forged or misrouted),
or that is not a CiEvent at all, is refused: acked, logged and counted, never retried and
never fatal to the consumer. A failure of Postgres or NATS is retried (nak with backoff).
The run's submission continues the event's trace (a process span, child of the publisher's).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import AsyncIterator

import asyncpg
import msgspec
from aiohttp import web
from nats.aio.msg import Msg
from nats.errors import Error as NatsError

from revo_contracts.ci import FAILED_STATUSES, CiEvent
from revo_contracts.integrations import CiPolicy
from revo_contracts.runs import RunSubmit
from revo_contracts.streams import CI_EVENTS
from revo_core.bus import Bus
from revo_core.durable_consumer import DurableConsumer
from revo_core.errors import InvalidRequest
from revo_core.logging import get_logger
from revo_core.runs import submit_run
from revo_core.service import BUS, SETTINGS
from revo_core.tracing import process_span
from revo_integrations.app_keys import ANNOUNCER, POOL
from revo_integrations.ci_policy import PolicyStore, branch_of, repository_name, verdict
from revo_integrations.metrics import CI_RUNS
from revo_integrations.outcomes import OutcomeAnnouncer
from revo_integrations.settings import IntegrationsSettings

CONSUMER = "integrations-ci"
BATCH = 16
MAX_RETRY_DELAY_S = 30.0
log = get_logger("revo.integrations.ci_trigger")
_decoder = msgspec.json.Decoder(CiEvent)


class CiTrigger:
    def __init__(
        self,
        bus: Bus,
        pool: asyncpg.Pool,
        policies: PolicyStore,
        announcer: OutcomeAnnouncer,
        ack_wait_s: float = 30.0,
    ) -> None:
        self.bus = bus
        self.pool = pool
        self.policies = policies
        self.announcer = announcer
        self.ack_wait_s = ack_wait_s
        self.consumer = DurableConsumer(
            bus, CI_EVENTS.name, CONSUMER, "ci.events.>", self._handle, ack_wait_s, BATCH
        )

    async def start(self) -> None:
        await self.consumer.start()

    async def stop(self) -> None:
        """Stop taking events; one being handled is cut short and comes back unacked."""
        await self.consumer.stop()

    async def _handle(self, msg: Msg) -> None:
        # The publisher's trace goes on here: one trace from the webhook to the run.
        with process_span(msg.subject, msg.headers):
            try:
                outcome = await self._settle(msg)
            except Exception:  # a bug must not stop the consumer: the event comes back
                log.exception("CI event not handled", subject=msg.subject)
                await _retry_later(msg)
                outcome = "retried"
        CI_RUNS.labels(outcome).inc()

    async def _settle(self, msg: Msg) -> str:
        """Act on one delivery and ack or nak it; its CI_RUNS outcome."""
        event = _accepted(msg)
        if event is None:
            await msg.ack()
            return "refused"
        try:
            outcome = await self._act(event)
        except asyncpg.DataError as exc:
            # A value Postgres will never take (a NUL character in a job's name): a
            # redelivery would fail the same way for ever, so it is refused, and said.
            log.error("CI event refused: not storable", event_id=event.event_id, error=str(exc))
            await msg.ack()
            return "refused"
        except (asyncpg.PostgresError, OSError, NatsError, TimeoutError) as exc:
            log.warning("CI event not handled yet", event_id=event.event_id, error=str(exc))
            await _retry_later(msg)
            return "retried"
        await msg.ack()
        return outcome

    async def _act(self, event: CiEvent) -> str:
        if event.status not in FAILED_STATUSES:
            return "not_failed"  # most events: no database round trip
        policy = await self.policies.get(event.tenant)
        skipped = verdict(policy, event)
        if skipped is not None:
            log.info("CI failure starts no run", event_id=event.event_id, reason=skipped)
            return skipped
        signature = event.failure_signature()
        run_id = ci_run_id(event.tenant, signature, event.event_id)
        if not await self._claim(event, signature, run_id, policy.window_s):
            log.info("CI failure already investigated", event_id=event.event_id, run_id=run_id)
            return "deduplicated"
        if await self._recorded(run_id):
            return "deduplicated"  # a redelivery of an event whose run is submitted
        try:
            await submit_run(self.bus, ci_run(event, policy, run_id))
        except InvalidRequest as exc:  # the run itself is unacceptable: no retry helps
            log.error("CI run refused", event_id=event.event_id, error=exc.message)
            await self._release(event, signature)  # the next report of it may start one
            return "refused"
        # Before the record: a crash in between resubmits (deduped) and watches again (a no-op).
        await self.announcer.watch(run_id, event, list(policy.notify))
        await self._record(event, policy, signature, run_id)
        log.info(
            "CI run submitted",
            event_id=event.event_id,
            run_id=run_id,
            tenant=event.tenant,
            agent=policy.agent,
        )
        return "submitted"

    async def _claim(self, event: CiEvent, signature: str, run_id: str, window_s: float) -> bool:
        """Take the failure's window for this event; False when another event has it."""
        key = _signature_key(signature)
        taken = await self.pool.fetchval(
            """INSERT INTO integrations.ci_failures AS f
                   (tenant, signature_key, signature, event_id, run_id)
               VALUES ($1, $2, $3, $4, $5)
               ON CONFLICT (tenant, signature_key) DO UPDATE
               SET event_id = EXCLUDED.event_id, run_id = EXCLUDED.run_id,
                   claimed_at = CASE WHEN f.event_id = EXCLUDED.event_id
                                     THEN f.claimed_at ELSE now() END
               WHERE f.event_id = EXCLUDED.event_id
                  OR f.claimed_at <= now() - make_interval(secs => $6)
               RETURNING true""",
            event.tenant,
            key,
            signature,
            event.event_id,
            run_id,
            window_s,
        )
        return bool(taken)

    async def _release(self, event: CiEvent, signature: str) -> None:
        await self.pool.execute(
            "DELETE FROM integrations.ci_failures "
            "WHERE tenant = $1 AND signature_key = $2 AND event_id = $3",
            event.tenant,
            _signature_key(signature),
            event.event_id,
        )

    async def _recorded(self, run_id: str) -> bool:
        found = await self.pool.fetchval(
            "SELECT true FROM integrations.ci_runs WHERE run_id = $1", run_id
        )
        return bool(found)

    async def _record(self, event: CiEvent, policy: CiPolicy, signature: str, run_id: str) -> None:
        await self.pool.execute(
            """INSERT INTO integrations.ci_runs
                   (run_id, tenant, event_id, provider, agent, signature)
               VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (run_id) DO NOTHING""",
            run_id,
            event.tenant,
            event.event_id,
            event.provider,
            policy.agent,
            signature,
        )


def _signature_key(signature: str) -> str:
    return hashlib.sha256(signature.encode()).hexdigest()


def ci_run_id(tenant: str, signature: str, event_id: str) -> str:
    """The same for every delivery of one event, different for any other event."""
    digest = hashlib.sha256(f"{tenant}\n{signature}\n{event_id}".encode()).hexdigest()
    return f"ci-{digest[:40]}"


def ci_run(event: CiEvent, policy: CiPolicy, run_id: str) -> RunSubmit:
    """The run a failing event starts: the task names what failed and where, and carries the
    event itself (its log inline, or its CI_LOGS reference) as JSON for the agent to read."""
    actor = f"ci:{event.provider}"
    return RunSubmit(
        run_id=run_id,
        tenant=event.tenant,
        agent=policy.agent,
        task=ci_task(event),
        user=actor,
        owner=actor,
    )


def ci_task(event: CiEvent) -> str:
    what = " / ".join(part for part in (event.workflow, event.job) if part) or "a CI job"
    lines = [
        f"CI {event.status}: {what} in {repository_name(event) or 'a repository'}"
        f" at commit {event.commit_sha or '(unknown)'}"
        + (f" on branch {branch_of(event)}" if branch_of(event) else "")
        + (f" (PR #{event.pr_number})" if event.pr_number else "")
        + f", reported by {event.provider}.",
    ]
    if event.job_url or event.url:
        lines.append(f"Job page: {event.job_url or event.url}")
    lines.append(_log_line(event))
    lines.append("Find the root cause of this failure. The CI event (JSON):")
    lines.append(msgspec.json.encode(event).decode())
    return "\n".join(lines)


def _log_line(event: CiEvent) -> str:
    log_ = event.log
    if log_ is None:
        return "The event carries no log."
    if log_.ref is not None:
        cut = ", truncated: head and tail kept" if log_.truncated else ""
        return (
            f"Log: object {log_.ref.name!r} of the {log_.ref.bucket} object store "
            f"(gzip, {log_.ref.size} bytes{cut})."
        )
    return "Log: inline in the event (log.text)."


def _accepted(msg: Msg) -> CiEvent | None:
    try:
        event = _decoder.decode(msg.data)
    except (msgspec.DecodeError, RecursionError) as exc:  # RecursionError: nested too deep
        log.error("malformed CI event refused", subject=msg.subject, error=repr(exc)[:200])
        return None
    parts = msg.subject.split(".")
    subject_tenant = parts[2] if len(parts) == 4 else None
    if event.tenant != subject_tenant:
        log.error(
            "CI event refused: tenant_mismatch",
            subject=msg.subject,
            event_tenant=event.tenant,
            event_id=event.event_id,
        )
        return None
    return event


async def _retry_later(msg: Msg) -> None:
    delivered = 1
    with contextlib.suppress(Exception):
        delivered = msg.metadata.num_delivered
    with contextlib.suppress(Exception):  # NATS away: the ack wait brings it back anyway
        await msg.nak(delay=min(0.5 * 2 ** (delivered - 1), MAX_RETRY_DELAY_S))


async def ci_trigger_ctx(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: consume CI_EVENTS while the app runs (after the streams context)."""
    settings: IntegrationsSettings = app[SETTINGS]  # type: ignore[assignment]
    pool = app[POOL]
    policies = PolicyStore(pool)
    trigger = CiTrigger(app[BUS], pool, policies, app[ANNOUNCER], settings.ci_ack_wait_s)
    await trigger.start()
    yield
    await trigger.stop()
