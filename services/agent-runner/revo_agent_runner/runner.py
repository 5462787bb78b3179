"""Takes runs from the RUNS work queue and executes them, a bounded number at a time.

A run is acked only when it has ended. While it runs, heartbeats tell JetStream it is
alive (`in_progress`) and renew this replica's claim on it in Postgres; a runner that
dies stops both, so JetStream hands the run to another replica once `ack_wait` passes,
and that replica's claim succeeds once the dead one's lease has run out.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import msgspec
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from revo_agent_runner import metrics
from revo_agent_runner.agents import AgentSpec
from revo_agent_runner.claims import Claims
from revo_agent_runner.event_log import RunLog
from revo_agent_runner.event_writer import EventWriter
from revo_agent_runner.execution import ActiveRun, RunExecutor
from revo_agent_runner.pending_cancels import PendingCancels
from revo_agent_runner.settings import AgentRunnerSettings
from revo_agent_runner.store import Claim, RunStore
from revo_agent_runner.unreadable import identify
from revo_contracts import subjects
from revo_contracts.runs import RunFailed, RunSubmit
from revo_contracts.streams import RUNS
from revo_core.bus import Bus
from revo_core.codec import UNREADABLE
from revo_core.logging import get_logger
from revo_core.tracing import process_span

log = get_logger("revo.agent_runner")

CONSUMER = "agent-runner"
# How long one pull waits for a run when none is queued; and how long the pull for more
# waits when the server is slow to say what is queued (it answers at once otherwise).
LONG_POLL_S = 1.0
QUEUED_ONLY_S = 0.05
_submit_decoder = msgspec.json.Decoder(RunSubmit)


class Runner:
    def __init__(
        self,
        bus: Bus,
        store: RunStore,
        writer: EventWriter,
        agents: dict[str, AgentSpec],
        settings: AgentRunnerSettings,
    ) -> None:
        self.bus = bus
        self.store = store
        self.writer = writer
        self.claims = Claims(store.pool, settings.runner_id, settings.ack_wait_s)
        self.executor = RunExecutor(bus, store, writer, agents, settings)
        self.settings = settings
        self.active: dict[str, ActiveRun] = {}
        self.pending_cancels = PendingCancels()
        self._taken = 0
        self._deliveries: set[asyncio.Task[None]] = set()
        self._slot_freed = asyncio.Event()
        self._fetcher: asyncio.Task[None] | None = None
        self._stopping = False

    # -- consuming -----------------------------------------------------------------------

    async def start(self) -> None:
        self.claims.start()
        config = ConsumerConfig(
            durable_name=CONSUMER,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=self.settings.ack_wait_s,
            # Unlimited here: the runner itself ends a run after max_attempts, with an event.
            max_deliver=-1,
            max_ack_pending=-1,
            filter_subject=subjects.RUNS_SUBMIT_ALL,
        )
        await self.bus.js.add_consumer(RUNS.name, config)
        self._subscription = await self.bus.js.pull_subscribe_bind(
            durable=CONSUMER, stream=RUNS.name
        )
        self._fetcher = asyncio.create_task(self._fetch_loop(), name="runs-fetch")

    async def _fetch_loop(self) -> None:
        while not self._stopping:
            free = self.settings.max_concurrent_runs - self._taken
            if free <= 0:
                self._slot_freed.clear()
                await self._slot_freed.wait()
                continue
            # Wait for one run, and start it the moment it comes: nats-py's fetch of a
            # batch would hold a run that arrives during its long poll until the batch
            # fills or the poll ends. Then take what else is queued, without waiting.
            self._take_all(await self._fetch(1, LONG_POLL_S))
            if free > 1 and self._taken < self.settings.max_concurrent_runs:
                self._take_all(await self._fetch(free - 1, QUEUED_ONLY_S))

    async def _fetch(self, batch: int, timeout: float) -> list[Msg]:
        try:
            return await self._subscription.fetch(batch, timeout=timeout)
        except (NatsTimeout, TimeoutError):
            return []
        except Exception as exc:  # a lost connection: keep trying, never die
            log.warning("fetching runs failed", error=str(exc))
            await asyncio.sleep(0.5)
            return []

    def _take_all(self, msgs: list[Msg]) -> None:
        for msg in msgs:
            self._taken += 1
            task = asyncio.create_task(self._take(msg), name="run")
            self._deliveries.add(task)
            task.add_done_callback(self._deliveries.discard)

    async def stop(self, grace: float) -> None:
        """Stop taking runs; give running ones `grace` seconds, then hand them back."""
        self._stopping = True
        if self._fetcher is not None:
            self._fetcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._fetcher
            # A pull subscription left open holds the connection's drain for its full timeout.
            with contextlib.suppress(Exception):
                await self._subscription.unsubscribe()
        if self._deliveries:
            await self._drain(grace)
        await self.claims.stop()

    async def _drain(self, grace: float) -> None:
        log.info("waiting for runs to end", runs=len(self._deliveries), grace_s=grace)
        _, pending = await asyncio.wait(set(self._deliveries), timeout=grace)
        if pending:
            # Handed back unfinished (nak): another replica resumes them from their logs.
            for run in self.active.values():
                if run.task is not None:
                    run.task.cancel()
            _, stuck = await asyncio.wait(pending, timeout=10)
            log.info("runs handed back", runs=len(pending) - len(stuck), stuck=len(stuck))

    # -- one delivery --------------------------------------------------------------------

    async def _take(self, msg: Msg) -> None:
        try:
            submit = await self._decode(msg)
            if submit is not None:
                await self._execute(submit, msg)
        except Exception:
            log.exception("run delivery failed; it will be redelivered")
            with contextlib.suppress(Exception):
                await msg.nak(delay=1.0)
        finally:
            self._taken -= 1
            self._slot_freed.set()

    async def _decode(self, msg: Msg) -> RunSubmit | None:
        try:
            submit = _submit_decoder.decode(msg.data)
        except UNREADABLE as exc:
            metrics.REJECTED.labels("malformed").inc()
            stand_in = identify(msg)
            log.error(
                "malformed run",
                subject=msg.subject,
                error=str(exc),
                size=len(msg.data),
                run_id=stand_in.run_id if stand_in else None,
            )
            if stand_in is None:
                await msg.term()  # nobody to tell: no run of this subject's tenant is named
            else:
                await self._fail_unreadable(stand_in, msg, f"the run could not be read: {exc}")
            return None
        subject_tenant = msg.subject.rsplit(".", 1)[-1]
        if submit.tenant != subject_tenant:
            # Defence in depth: NATS permissions decide who may submit for a tenant (the
            # subject); a run naming another tenant in its body is forged or misrouted.
            metrics.REJECTED.labels("tenant_mismatch").inc()
            log.error(
                "run dropped: tenant_mismatch",
                subject=msg.subject,
                run_tenant=submit.tenant,
                run_id=submit.run_id,
            )
            await msg.term()
            return None
        return submit

    async def _fail_unreadable(self, stand_in: RunSubmit, msg: Msg, reason: str) -> None:
        """End a run that cannot be decoded as failed (event + Postgres), so its submitter
        hears why now instead of waiting out its timeout."""
        claim = await self.claims.claim(stand_in)
        if not isinstance(claim, Claim):
            await self._refused(stand_in, msg, claim)
            return
        run_log = await RunLog.open(
            self.bus, self.store, self.writer, stand_in, first_attempt=claim.attempt == 1
        )
        try:
            if not run_log.state.ended:
                await run_log.emit(RunFailed, code="invalid_request", reason=reason)
            await run_log.confirm_published()
        finally:
            await run_log.close()
        await msg.ack()

    async def _execute(self, submit: RunSubmit, msg: Msg) -> None:
        held = self.active.get(submit.run_id)
        if held is not None:
            await self._given_out_again(held, msg)
            return
        # Held here from before its claim, so a redelivery meanwhile finds it (above): the
        # claim lets a run's own owner take it again, and a second attempt would run beside
        # this one.
        run = ActiveRun(submit=submit, msg=msg)
        run.cancel_reason = self.pending_cancels.take(submit.run_id)
        self.active[submit.run_id] = run
        try:
            claim = await self.claims.claim(submit)
            if not isinstance(claim, Claim):
                await self._refused(submit, run.msg, claim)
                return
            await self._run(run, claim)
        finally:
            del self.active[submit.run_id]

    async def _run(self, run: ActiveRun, claim: Claim) -> None:
        submit = run.submit
        metrics.ACTIVE_RUNS.inc()
        started = time.perf_counter()
        try:
            with process_span(subjects.runs_submit(submit.tenant), run.msg.headers):
                run.task = asyncio.create_task(self.executor.execute(run, claim))
                heartbeat = asyncio.create_task(self._heartbeat(run))
                try:
                    await asyncio.wait([run.task])
                finally:
                    heartbeat.cancel()
                await self._settle(run)
        finally:
            metrics.ACTIVE_RUNS.dec()
            metrics.RUN_SECONDS.labels(submit.agent).observe(time.perf_counter() - started)

    async def _given_out_again(self, run: ActiveRun, msg: Msg) -> None:
        """JetStream gave out a run this replica is executing (its heartbeats did not reach
        NATS within ack_wait): it goes on here, answering for the newest delivery."""
        metrics.REJECTED.labels("running_here").inc()
        log.warning("run given out again while it runs here; kept", run_id=run.submit.run_id)
        run.msg = msg
        with contextlib.suppress(Exception):
            await msg.in_progress()

    async def _settle(self, run: ActiveRun) -> None:
        """Ack an ended run; hand an unfinished one back (shutdown) for another replica."""
        task = run.task
        assert task is not None
        if run.log is not None:
            # What the run appended goes to Postgres before another replica may load it.
            await asyncio.wait_for(run.log.close(), 10)
        if run.lost_claim:
            return  # another replica holds it now; its delivery will be acked
        if task.cancelled():
            await self._hand_back(run)
        elif task.exception() is None:
            await run.msg.ack()
        elif run.log is not None and run.log.ended_elsewhere:
            log.warning("run ended by another attempt; this one stops", run_id=run.submit.run_id)
            await run.msg.ack()
        else:
            log.error(
                "run crashed; it will be retried",
                run_id=run.submit.run_id,
                exc_info=task.exception(),
            )
            await self._hand_back(run, delay=1.0)

    async def _hand_back(self, run: ActiveRun, delay: float | None = None) -> None:
        try:
            await self.store.release(run.submit.run_id, self.settings.runner_id)
        except Exception as exc:  # Postgres away: this replica may claim it again itself
            log.warning("releasing a run failed", run_id=run.submit.run_id, error=str(exc))
        await run.msg.nak(delay=delay)

    async def _refused(self, submit: RunSubmit, msg: Msg, refusal: Any) -> None:
        if refusal.tenant is not None and refusal.tenant != submit.tenant:
            metrics.REJECTED.labels("other_tenant").inc()
            log.error("run id already used by another tenant; dropped", run_id=submit.run_id)
            await msg.term()
        elif refusal.ended:
            metrics.REJECTED.labels("ended").inc()
            await msg.ack()
        else:
            # Alive on another replica (its lease holds): look again once the lease could end.
            metrics.REJECTED.labels("held_elsewhere").inc()
            await msg.nak(delay=self.settings.ack_wait_s)

    async def _heartbeat(self, run: ActiveRun) -> None:
        while True:
            await asyncio.sleep(self.settings.heartbeat_s)
            try:
                await run.msg.in_progress()
            except Exception as exc:
                log.warning("heartbeat failed", run_id=run.submit.run_id, error=str(exc))
            # Renewed with NATS away too: while the run goes on here, a replica it is given
            # out to meanwhile must find the claim held.
            try:
                renewed = await self.store.renew(
                    run.submit.run_id, self.settings.runner_id, self.settings.ack_wait_s
                )
            except Exception as exc:
                log.warning("renewing a claim failed", run_id=run.submit.run_id, error=str(exc))
                continue
            if not renewed:
                log.error("lost the claim on a run; stopping it here", run_id=run.submit.run_id)
                run.lost_claim = True
                if run.task is not None:
                    run.task.cancel()
                return
