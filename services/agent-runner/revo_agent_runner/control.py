"""`runs.control.<run>`: cancel a run, or answer the question it waits on.

Two subscriptions on every replica: one in a queue group records each control message in
Postgres once (a run picked up or resumed later still obeys it), and a plain one lets the
replica that holds the run act on it at once and acknowledge it when asked.
"""

from __future__ import annotations

import msgspec
from nats.aio.msg import Msg

from revo_agent_runner.runner import Runner
from revo_agent_runner.store import RunStore
from revo_contracts import subjects
from revo_contracts.runs import Answer, Cancel, ControlAck, RunControl
from revo_core.audit import audit_event, record_audit
from revo_core.codec import UNREADABLE
from revo_core.logging import get_logger

log = get_logger("revo.agent_runner.control")
_decoder = msgspec.json.Decoder(RunControl)
_encoder = msgspec.json.Encoder()
RECORDERS_GROUP = "agent-runner-controls"


class Controls:
    def __init__(self, runner: Runner, store: RunStore) -> None:
        self.runner = runner
        self.store = store
        self._subscriptions: list = []

    async def start(self) -> None:
        nc = self.runner.bus.nc
        self._subscriptions = [
            await nc.subscribe(subjects.RUNS_CONTROL_ALL, queue=RECORDERS_GROUP, cb=self._record),
            await nc.subscribe(subjects.RUNS_CONTROL_ALL, cb=self._apply),
        ]

    async def stop(self) -> None:
        for subscription in self._subscriptions:
            await subscription.unsubscribe()

    async def _record(self, msg: Msg) -> None:
        # Awaited in the callback on purpose: answers must be stored in the order they came.
        control = _decode(msg)
        if control is None:
            return
        try:
            await self.store.record_control(_run_id(msg), control)
        except Exception as exc:
            log.error("recording a control message failed", run_id=_run_id(msg), error=str(exc))
            return
        if isinstance(control, Cancel):
            await self._audit_cancel(_run_id(msg), control)

    async def _audit_cancel(self, run_id: str, cancel: Cancel) -> None:
        """One audit event per cancel (this subscription is in a queue group: one replica)."""
        summary = await self.store.summary(run_id)
        if summary is None:
            return  # no such run: nothing was cancelled
        event = audit_event(
            summary.tenant,
            cancel.actor or "unknown",
            "run.cancelled",
            target=run_id,
            service="agent-runner",
            reason=cancel.reason,
        )
        await record_audit(self.runner.bus, event)

    async def _apply(self, msg: Msg) -> None:
        control = _decode(msg)
        if control is None:
            return
        run = self.runner.active.get(_run_id(msg))
        if run is None:
            # Not here, or being claimed right now: a cancel applies if it is claimed here.
            # (An answer needs no such care: the run only waits for one once it is held.)
            if isinstance(control, Cancel):
                self.runner.pending_cancels.keep(_run_id(msg), control.reason)
            return
        if isinstance(control, Cancel):
            run.cancel(control.reason)
            status = "cancelling"
        else:
            assert isinstance(control, Answer)
            run.live_answers.put_nowait(control.text)
            status = "answered"
        log.info("control applied", run_id=run.submit.run_id, status=status)
        if msg.reply:
            ack = ControlAck(run_id=run.submit.run_id, accepted=True, status=status)
            await self.runner.bus.nc.publish(msg.reply, _encoder.encode(ack))


def _run_id(msg: Msg) -> str:
    return msg.subject.rsplit(".", 1)[-1]


def _decode(msg: Msg) -> RunControl | None:
    try:
        return _decoder.decode(msg.data)
    except UNREADABLE as exc:
        log.error("malformed control message dropped", subject=msg.subject, error=str(exc))
        return None
